// Wording shared by messages: how an error names the value it found ("not number 5",
// "not a list"), and counts in the right number ("1 bridge", "2 bridges").
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a map";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

/** "1 bridge", "2 bridges", "1 entry" with many = "entries". */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
