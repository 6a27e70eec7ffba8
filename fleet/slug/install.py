"""Unpacking a slug on a host, and measuring what a slug unpacks to (pure: scripts and argv).

A slug reaches a host as ``SLUGS/.<sha>.tar.zst.part``. The install script,
run as root with ``sh -c``:

1. checks the sha256;
2. counts what the slug unpacks to, reading no more than the cap plus one
   byte of it, and refuses a slug over the cap before extracting any of it;
3. extracts into a 0700 staging directory as the unprivileged slug owner
   (setpriv: no capabilities, no_new_privs), so no device node can be made,
   nothing outside the staging directory can be written, and with
   ``--no-same-permissions`` no setuid or setgid bit is set;
4. refuses a slug holding a FIFO, socket or device file, or any setuid or
   setgid file (belt and braces: slugs fleet builds have none);
5. renames the staging directory to ``SLUGS/<sha>`` and the slug to
   ``SLUGS/<sha>.tar.zst``.

Whatever it refuses or fails on, it leaves nothing behind: no staging
directory, no ``.part`` file.
"""

from __future__ import annotations

from pathlib import Path

#: Exit code of a refusal (the message is on stderr, starting with "fleet-slug: ").
REFUSED = 3

#: Bytes a zstd tarball unpacks to, counting no further than $2 + 1: ``sh -c COUNT fleet-count FILE CAP``.
COUNT_UNPACKED = 'zstd -dcq -- "$1" | head -c "$(($2 + 1))" | wc -c'

INSTALL_SLUG = r"""set -eu
umask 022
cd "$1"
sha="$2" cap="$3" owner="$4"
part=".$sha.tar.zst.part" stage=".$sha.x"
trap 'rm -rf -- "$stage" "$part"' EXIT
refuse() { echo "fleet-slug: slug $(printf %.12s "$sha") $*; refused, nothing extracted" >&2; exit 3; }
echo "$sha  $part" | sha256sum -c --quiet - >/dev/null 2>&1 || refuse "does not match its sha256"
size=$(zstd -dcq -- "$part" | head -c "$((cap + 1))" | wc -c)
[ "$size" -le "$cap" ] || refuse "unpacks to more than $cap bytes (slug_max_uncompressed_mb)"
rm -rf -- "$stage"
mkdir -m 0700 -- "$stage"
chown -- "$owner:$owner" "$stage"
zstd -dcq -- "$part" | setpriv --reuid="$owner" --regid="$owner" --clear-groups --inh-caps=-all --no-new-privs -- \
  tar --no-same-owner --no-same-permissions -xf - -C "$stage" || refuse "could not be extracted (tar's message above)"
bad=$(find "$stage" \( ! -type f ! -type d ! -type l -o -perm /6000 \) -print -quit)
[ -z "$bad" ] || refuse "holds a device file, FIFO, socket or setuid/setgid file (${bad#"$stage"/})"
mv -T -- "$stage" "$sha" 2>/dev/null || [ -d "$sha" ]  # or another install of the same slug won
mv -- "$part" "$sha.tar.zst"
"""


def install_slug_argv(slugs_dir: str, sha: str, max_bytes: int, owner_uid: int) -> tuple[str, ...]:
    """Unpack ``slugs_dir/.<sha>.tar.zst.part`` into ``slugs_dir/<sha>``, owned by ``owner_uid``, or refuse it."""
    return ("sh", "-c", INSTALL_SLUG, "fleet-slug", slugs_dir, sha, str(max_bytes), str(owner_uid))


def count_unpacked_argv(slug: Path, max_bytes: int) -> tuple[str, ...]:
    """Prints what the slug unpacks to in bytes, or ``max_bytes + 1`` when it unpacks to more."""
    return ("sh", "-c", COUNT_UNPACKED, "fleet-count", str(slug), str(max_bytes))
