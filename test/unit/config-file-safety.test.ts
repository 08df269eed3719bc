// Who may write the config: the private-group rule on made-up accounts, and the walk from a
// config path through its symlinks (the folders the safety check and the watcher look at).
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative as relativePath } from "node:path";
import { after, test } from "node:test";
import { type Accounts, readAccounts, sharedGroupReason } from "../../src/config/file-safety.ts";
import { foldersOf, namesByFolder, resolveChain } from "../../src/config/path-chain.ts";

const dir = realpathSync(mkdtempSync(join(tmpdir(), "tcpgate-safety-")));
after(() => rmSync(dir, { recursive: true, force: true }));

function accounts(passwd: string, group: string): Accounts {
  writeFileSync(join(dir, "passwd"), passwd);
  writeFileSync(join(dir, "group"), group);
  return readAccounts(join(dir, "passwd"), join(dir, "group"));
}

const system = accounts(
  [
    "root:x:0:0:root:/root:/bin/bash",
    "alice:x:1000:1000:Alice:/home/alice:/bin/bash",
    "bob:x:1001:1001:Bob:/home/bob:/bin/bash",
    "carol:x:1002:100:Carol:/home/carol:/bin/bash",
    "dave:x:1003:100:Dave:/home/dave:/bin/bash",
    "svc:x:1004:1005::/nonexistent:/usr/sbin/nologin",
    "",
  ].join("\n"),
  [
    "root:x:0:",
    "users:x:100:",
    "alice:x:1000:",
    "bob:x:1001:",
    "ops:x:1002:alice",
    "devs:x:1003:alice,bob",
    "crontab:x:1004:",
    "svcgroup:x:1005:svc",
    "",
  ].join("\n"),
);

const entry = (uid: number, gid: number) => ({ mode: 0o100664, uid, gid });

test("/etc/passwd and /etc/group are read into users and groups", () => {
  assert.deepEqual(system.users[1], { name: "alice", uid: 1000, gid: 1000 });
  assert.deepEqual(system.groups.at(-3), { name: "devs", gid: 1003, members: ["alice", "bob"] });
  assert.deepEqual(readAccounts(join(dir, "missing"), join(dir, "missing")), { users: [], groups: [] });
});

test("a group is private when the owner is its one member, as primary group or listed", () => {
  // The user-private-group scheme: alice's own group, nobody else in it (umask 002 gives 664).
  assert.equal(sharedGroupReason(entry(1000, 1000), system), undefined);
  assert.equal(sharedGroupReason(entry(0, 0), system), undefined);
  // A group whose only listed member is the owner, and one both primary and listed.
  assert.equal(sharedGroupReason(entry(1000, 1002), system), undefined);
  assert.equal(sharedGroupReason(entry(1004, 1005), system), undefined);
});

test("a group is shared when anyone else is in it, when it is empty, or when it is unknown", () => {
  assert.equal(sharedGroupReason(entry(1000, 1003), system), 'group "devs" has other members (bob)');
  // Primary members count, though /etc/group lists nobody.
  assert.equal(sharedGroupReason(entry(1002, 100), system), 'group "users" has other members (dave)');
  assert.equal(sharedGroupReason(entry(0, 100), system), 'group "users" has other members (carol, dave)');
  // Someone else's private group.
  assert.equal(sharedGroupReason(entry(1000, 1001), system), 'group "bob" has other members (bob)');
  // No member at all: a setgid program of that group writes as it.
  assert.equal(sharedGroupReason(entry(0, 1004), system), 'group "crontab" has no members');
  assert.equal(sharedGroupReason(entry(0, 4242), system), "its group (gid 4242) is not in /etc/group");
  // A listed member with no passwd entry is not the owner.
  const ghost = accounts("root:x:0:0::/:/bin/sh\n", "wheel:x:10:root,ghost\n");
  assert.equal(sharedGroupReason(entry(0, 10), ghost), 'group "wheel" has other members (ghost)');
});

test("the chain from a path to its file: every symlink on the way, and the folders that hold them", async () => {
  // The kubelet's layout: proxy.yaml -> ..data/proxy.yaml, ..data -> ..v1; and a release
  // layout with an absolute link to a "current" link elsewhere.
  const cm = join(dir, "cm");
  mkdirSync(join(cm, "..v1"), { recursive: true });
  writeFileSync(join(cm, "..v1", "proxy.yaml"), "");
  symlinkSync("..v1", join(cm, "..data"));
  symlinkSync("..data/proxy.yaml", join(cm, "proxy.yaml"));
  const releases = join(dir, "releases");
  mkdirSync(join(releases, "v2"), { recursive: true });
  symlinkSync("v2", join(releases, "current"));
  symlinkSync(join(cm, "proxy.yaml"), join(releases, "v2", "proxy.yaml"));
  const etc = join(dir, "etc");
  mkdirSync(etc);
  symlinkSync(join(releases, "current", "proxy.yaml"), join(etc, "proxy.yaml"));

  const chain = await resolveChain(join(etc, "proxy.yaml"));
  assert.deepEqual(chain.links, [
    join(etc, "proxy.yaml"),
    join(releases, "current"),
    join(releases, "v2", "proxy.yaml"),
    join(cm, "proxy.yaml"),
    join(cm, "..data"),
  ]);
  assert.equal(chain.target, join(cm, "..v1", "proxy.yaml"));
  assert.deepEqual(foldersOf(chain), [etc, releases, join(releases, "v2"), cm, join(cm, "..v1")]);
  assert.deepEqual(namesByFolder(chain).get(cm), new Set(["proxy.yaml", "..data"]));

  // ".." after a link leaves the folder the link led to, as the kernel has it, not the
  // folder the link is in: etc/elsewhere/.. is releases, not etc.
  symlinkSync(join(releases, "v2"), join(etc, "elsewhere"));
  const dotdot = await resolveChain(`${etc}/elsewhere/../current/proxy.yaml`);
  assert.equal(dotdot.target, join(cm, "..v1", "proxy.yaml"));
  assert.equal(dotdot.links[0], join(etc, "elsewhere"));
  // A relative path starts from the working folder.
  const relative = await resolveChain(relativePath(process.cwd(), join(cm, "proxy.yaml")));
  assert.equal(relative.target, join(cm, "..v1", "proxy.yaml"));
});

test("a missing part ends the chain where it would be, so its folder can be watched for it", async () => {
  const chain = await resolveChain(join(dir, "nothing-here", "proxy.yaml"));
  assert.deepEqual(chain, { links: [], target: undefined, last: join(dir, "nothing-here") });
  symlinkSync("gone.yaml", join(dir, "dangling.yaml"));
  const dangling = await resolveChain(join(dir, "dangling.yaml"));
  assert.deepEqual(dangling, { links: [join(dir, "dangling.yaml")], target: undefined, last: join(dir, "gone.yaml") });
  symlinkSync("loop", join(dir, "loop"));
  await assert.rejects(resolveChain(join(dir, "loop")), /more than 40 symlinks/);
});
