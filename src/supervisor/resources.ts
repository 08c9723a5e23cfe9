// One stack of what a start has acquired, unwound in reverse both by a start that fails half-way
// and by the clean stop: one teardown order, written once.

export type Release = (graceful: boolean) => Promise<unknown> | void;

export class ResourceStack {
  private readonly entries: Array<{ name: string; release: Release }> = [];
  private unwinding: Promise<void> | undefined;

  /** Registers what undoes the resource just acquired. */
  defer(name: string, release: Release): void {
    this.entries.push({ name, release });
  }

  /**
   * Releases everything, last acquired first; graceful (the clean stop) lets traffic drain, a failed
   * start does not. Every release runs even when an earlier one fails; the first error is reported
   * to onError. Idempotent.
   */
  unwind(graceful: boolean, onError: (name: string, error: unknown) => void = () => undefined): Promise<void> {
    this.unwinding ??= (async () => {
      while (this.entries.length > 0) {
        const { name, release } = this.entries.pop()!;
        try {
          await release(graceful);
        } catch (error) {
          onError(name, error);
        }
      }
    })();
    return this.unwinding;
  }
}
