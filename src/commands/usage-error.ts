/** Bad usage: exit status 2, one line ending in "(see tcpgate --help)". */
export class UsageError extends Error {}
