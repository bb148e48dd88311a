#!/usr/bin/env python3
"""Records whose values are slices of real text, for `ldb load` (the corpus
series of benches/lib.sh; issue 14, "Artificial data").

    corpus.py pool POOL BYTES        # write POOL: BYTES of text found on the machine
    corpus.py fill POOL KEYS SIZE    # all KEYS records, shuffled (seed 1), to stdout
    corpus.py churn POOL KEYS SIZE COUNT SEED   # COUNT records overwritten (seed SEED)

The pool is the concatenation, in sorted path order, of man pages
(decompressed), /usr/share/doc (text files, decompressed), the sources under
~/.cargo/registry/src and the Rust toolchain's documentation, until BYTES;
files holding a NUL byte in their first 4 KiB are skipped as binary. Line
breaks become spaces (`ldb load` reads one `key ==> value` record a line).

Values are SIZE bytes. `fill` cuts the pool into consecutive SIZE-byte slices
and gives key i slice perm[i] (a seeded permutation): no value repeats another.
`churn` picks COUNT distinct keys and gives each the slice at a random
offset of the pool (text found elsewhere in the database, at another
alignment, as rewritten records are). Deterministic for a given machine: the
same files give the same pool, and the seeds are fixed.
"""

import gzip
import os
import random
import sys

ROOTS = [
    "/usr/share/man",
    "/usr/share/doc",
    os.path.expanduser("~/.cargo/registry/src"),
    os.path.expanduser("~/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc"),
]
TRANSLATE = bytes.maketrans(b"\n\r", b"  ")


def text_files():
    for root in ROOTS:
        paths = []
        for directory, subdirectories, names in os.walk(root):
            subdirectories.sort()
            paths.extend(os.path.join(directory, name) for name in names)
        for path in sorted(paths):
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            yield path


def read_text(path):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
    except (OSError, EOFError, gzip.BadGzipFile):
        return b""
    if b"\0" in data[:4096]:
        return b""
    return data.translate(TRANSLATE)


def pool(out, wanted):
    total = 0
    files = 0
    with open(out, "wb") as handle:
        for path in text_files():
            data = read_text(path)
            if not data:
                continue
            handle.write(data[: wanted - total])
            total += min(len(data), wanted - total)
            files += 1
            if total >= wanted:
                break
    if total < wanted:
        sys.exit(f"corpus.py: only {total} bytes of text under {ROOTS}, {wanted} wanted")
    print(f"corpus pool: {total} bytes from {files} files", file=sys.stderr)


def key(number):
    return b"%016d" % number


def fill(text, keys, size):
    slices = len(text) // size
    if slices < keys:
        sys.exit(f"corpus.py: the pool holds {slices} slices of {size} bytes, {keys} keys wanted")
    generator = random.Random(1)
    order = list(range(keys))
    generator.shuffle(order)
    chosen = generator.sample(range(slices), keys)
    write = sys.stdout.buffer.write
    for number in order:
        start = chosen[number] * size
        write(key(number) + b" ==> " + text[start : start + size] + b"\n")


def churn(text, keys, size, count, seed):
    generator = random.Random(seed)
    write = sys.stdout.buffer.write
    for number in generator.sample(range(keys), count):
        start = generator.randrange(len(text) - size)
        write(key(number) + b" ==> " + text[start : start + size] + b"\n")


def main():
    command = sys.argv[1]
    if command == "pool":
        pool(sys.argv[2], int(sys.argv[3]))
        return
    with open(sys.argv[2], "rb") as handle:
        text = handle.read()
    keys, size = int(sys.argv[3]), int(sys.argv[4])
    if command == "fill":
        fill(text, keys, size)
    elif command == "churn":
        churn(text, keys, size, int(sys.argv[5]), int(sys.argv[6]))
    else:
        sys.exit(f"corpus.py: unknown command {command}")


if __name__ == "__main__":
    main()
