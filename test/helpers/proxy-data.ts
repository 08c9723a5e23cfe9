// Deterministic test data in chunks, made as it is consumed so that no side ever holds it whole.

import { createHash } from 'node:crypto';

const CHUNK_BYTES = 64 * 1024;

// One block of pseudo-random bytes (fixed seed); each chunk is a fresh copy stamped with its index,
// so a lost, repeated or reordered chunk changes the hash.
const BLOCK = (() => {
  const block = Buffer.alloc(CHUNK_BYTES);
  let x = 0x2545f491;
  for (let i = 0; i < block.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    block[i] = x & 0xff;
  }
  return block;
})();

export function* dataChunks(totalBytes: number): Generator<Buffer> {
  let index = 0;
  for (let sent = 0; sent < totalBytes; sent += CHUNK_BYTES, index++) {
    const chunk = Buffer.from(BLOCK.subarray(0, Math.min(CHUNK_BYTES, totalBytes - sent)));
    if (chunk.length >= 8) chunk.writeBigUInt64BE(BigInt(index), 0);
    yield chunk;
  }
}

/** The sha256 (hex) of dataChunks(totalBytes), computed chunk by chunk. */
export function dataSha256(totalBytes: number): string {
  const hash = createHash('sha256');
  for (const chunk of dataChunks(totalBytes)) hash.update(chunk);
  return hash.digest('hex');
}
