// "did you mean" for unknown keys: typos, truncations, and the same name in another case style.

/** camelCase, kebab-case and SHOUTING spellings of a key, folded to snake_case. */
export function toSnakeCase(word: string): string {
  return word
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/-/g, '_')
    .toLowerCase();
}

export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** The candidate the user most likely meant, or undefined when none is close. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const folded = toSnakeCase(word);
  let best: string | undefined;
  let bestScore = Infinity;
  for (const candidate of candidates) {
    if (candidate === folded) return candidate;
    let score = editDistance(folded, candidate);
    const limit = Math.max(2, Math.floor(candidate.length / 3));
    // A truncated name ("max_pool" for "max_pool_size") is a near miss however many letters are gone.
    if (folded.length >= 4 && (candidate.startsWith(folded) || folded.startsWith(candidate))) score = Math.min(score, 1);
    else if (score > limit) continue;
    if (score < bestScore) {
      best = candidate;
      bestScore = score;
    }
  }
  return best;
}
