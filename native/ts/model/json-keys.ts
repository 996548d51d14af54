// Duplicate-key detection for JSON text: JSON.parse keeps the last of two equal keys, the safetensors spec
// forbids them, so a header that names a tensor twice must be refused rather than half-read.

/**
 * The first key that occurs twice in one object of `text` (any depth), with the path of that object; null when
 * there is none. `text` must already be valid JSON (JSON.parse succeeded): this scanner trusts the syntax and
 * only tracks strings, nesting and which strings are keys. Linear in the text; keys are decoded through
 * JSON.parse only when they contain a backslash, so "a" and "\u0061" are the same key.
 */
export function findDuplicateKey(text: string): { key: string; path: string[] } | null {
  /** Per open container: its key set (null for arrays) and whether the next string is a key. */
  const stack: { keys: Set<string> | null; expectKey: boolean; name: string }[] = [];
  let lastKey = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x7b /* { */) {
      stack.push({ keys: new Set(), expectKey: true, name: lastKey });
    } else if (ch === 0x5b /* [ */) {
      stack.push({ keys: null, expectKey: false, name: lastKey });
    } else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      stack.pop();
    } else if (ch === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    } else if (ch === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      while (text.charCodeAt(j) !== 0x22) {
        if (text.charCodeAt(j) === 0x5c /* \ */) { escaped = true; j++; }
        j++;
      }
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (top.keys.has(key)) return { key, path: stack.slice(1).map((s) => s.name) };
        top.keys.add(key);
        top.expectKey = false;
        lastKey = key;
      }
      i = j;
    }
  }
  return null;
}
