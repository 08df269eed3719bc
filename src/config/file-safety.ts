// The config is the gateway's rule set: refuse one that anyone but its owner could have
// changed, as sshd's StrictModes refuses such an authorized_keys. That means the file, and
// every folder on the way to it (whoever may rename entries in a folder can swap the file).
//
// Group write is allowed where the group is private to the owner, as Debian's and Ubuntu's
// sshd allow it: their users get a group of their own and umask 002, so a fresh clone or a
// new file is mode 664, and refusing it would refuse the common case for no safety gained.
import { readFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import { dirname } from "node:path";
import { foldersOf, resolveChain } from "./path-chain.ts";

export interface Accounts {
  readonly users: readonly { readonly name: string; readonly uid: number; readonly gid: number }[];
  readonly groups: readonly { readonly name: string; readonly gid: number; readonly members: readonly string[] }[];
}

/** Local accounts only: Node cannot ask NSS, so a group known only to LDAP or SSSD is not private. */
export function readAccounts(passwd = "/etc/passwd", group = "/etc/group"): Accounts {
  const rows = (file: string) => {
    try {
      return readFileSync(file, "utf8")
        .split("\n")
        .map((line) => line.split(":"))
        .filter((fields) => fields.length >= 4 && /^[0-9]+$/.test(fields[2] ?? ""));
    } catch {
      return [];
    }
  };
  return {
    users: rows(passwd).map(([name = "", , uid, gid]) => ({ name, uid: Number(uid), gid: Number(gid) })),
    groups: rows(group).map(([name = "", , gid, members = ""]) => ({
      name,
      gid: Number(gid),
      members: members.split(",").filter((m) => m !== ""),
    })),
  };
}

export interface Owned {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

/**
 * Why the group of entry is not the owner's alone, or undefined when it is: the owner is
 * its one member (as primary group in passwd or listed in group), and nobody else is.
 * An empty group is not private: a setgid program of that group can write as it.
 */
export function sharedGroupReason(entry: Owned, accounts: Accounts): string | undefined {
  const group = accounts.groups.find((g) => g.gid === entry.gid);
  if (!group) return `its group (gid ${entry.gid}) is not in /etc/group`;
  const uidOf = new Map(accounts.users.map((u) => [u.name, u.uid]));
  const primary = accounts.users.filter((u) => u.gid === entry.gid).map((u) => u.name);
  const members = [...new Set([...primary, ...group.members])];
  const others = members.filter((name) => uidOf.get(name) !== entry.uid);
  if (others.length > 0) return `group "${group.name}" has other members (${others.sort().join(", ")})`;
  if (members.length === 0) return `group "${group.name}" has no members`;
  return undefined;
}

interface Problem {
  /** "owned by another user (uid 1000); ..." or "writable by its group (mode 664): ..." */
  readonly text: string;
  /** A mode problem is fixed by chmod; an owner problem by chown or moving the file. */
  readonly byMode: boolean;
}

/** What is wrong with one entry's owner or mode; undefined when only its owner may write it. */
function problem(entry: Owned, me: number | undefined, accounts: () => Accounts, folder: boolean): Problem | undefined {
  if (me !== undefined && entry.uid !== 0 && entry.uid !== me) {
    return {
      text: `owned by another user (uid ${entry.uid}); it must be owned by root or by uid ${me}`,
      byMode: false,
    };
  }
  // In a sticky folder (/tmp) only an entry's owner may rename or delete it.
  if (folder && entry.mode & 0o1000) return undefined;
  const mode = (entry.mode & 0o777).toString(8);
  if (entry.mode & 0o002) return { text: `writable by everyone (mode ${mode})`, byMode: true };
  if (entry.mode & 0o020) {
    const shared = sharedGroupReason(entry, accounts());
    if (shared) return { text: `writable by its group (mode ${mode}): ${shared}`, byMode: true };
  }
  return undefined;
}

/**
 * Why the config at path, whose open handle has fileStats, could have been changed by
 * someone else; undefined when it could not. The file is judged by its handle, so the file
 * checked is the file read; folders by their paths.
 */
export async function unsafeConfigReason(path: string, fileStats: Owned): Promise<string | undefined> {
  const me = process.getuid?.();
  let accounts: Accounts | undefined;
  const lookup = () => {
    accounts ??= readAccounts();
    return accounts;
  };
  const file = problem(fileStats, me, lookup, false);
  if (file) return `refusing a config file ${file.text}${file.byMode ? "; chmod go-w it" : ""}`;
  // Without uids (Windows) folder modes mean nothing.
  if (me === undefined) return undefined;
  for (const folder of ancestors(foldersOf(await resolveChain(path)))) {
    const found = problem(await stat(folder), me, lookup, true);
    if (found) {
      const fix = found.byMode ? `; chmod go-w ${folder} (or chmod +t it, as /tmp is)` : "";
      return `refusing a config file in ${folder}: whoever may write a folder can replace the files in it, and this folder is ${found.text}${fix}`;
    }
  }
  return undefined;
}

/** The folders and every folder above them, nearest first, each once. */
function ancestors(folders: readonly string[]): string[] {
  const all = new Set<string>();
  for (let folder of folders) {
    while (!all.has(folder)) {
      all.add(folder);
      const parent = dirname(folder);
      if (parent === folder) break;
      folder = parent;
    }
  }
  return [...all];
}
