#!/usr/bin/env python3
"""Checks the library's module structure (docs/architecture.md):

- no import cycle between modules (through `crate::` paths, any length);
- no operation (a module under ops/) importing another operation;
- no lower layer (format, codec, lsm, backend, repo) importing ops/;
- codec/ and lsm/ importing nothing but their own modules and error, id, time.

Reads `crates/lsmvault/src` (or the directory given), ignores comments and
`#[cfg(test)]` code, prints every violation and exits 1 if there is any.
"""

import collections
import pathlib
import re
import sys

# Items the crate root re-exports, by the module that defines them.
ROOT_ITEMS = {
    "Error": "error",
    "ErrorCode": "error",
    "Result": "error",
    "Id": "id",
    "Interrupt": "interrupt",
    "Timestamp": "time",
    "Progress": "progress",
    "NoProgress": "progress",
}
LOWER_LAYERS = ("format", "codec", "lsm", "backend", "repo")
# codec/ and lsm/ stand on the bottom layer only.
BOTTOM = ("error", "id", "time", "interrupt")


def module_name(source: pathlib.Path, path: pathlib.Path) -> str:
    parts = list(path.relative_to(source).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return "::".join(parts)


def code_of(path: pathlib.Path) -> str:
    text = path.read_text()
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("//"))


def imports(source: pathlib.Path) -> dict:
    files = sorted(source.rglob("*.rs"))
    modules = {module_name(source, path) for path in files}
    edges = collections.defaultdict(set)
    for path in files:
        me = module_name(source, path)
        for reference in re.findall(r"crate::((?:\w+::)*\w+)", code_of(path)):
            parts = reference.split("::")
            target = ROOT_ITEMS.get(parts[0])
            for length in range(len(parts), 0, -1):
                if target:
                    break
                candidate = "::".join(parts[:length])
                if candidate in modules:
                    target = candidate
            related = target and (
                target == me or me.startswith(target + "::") or target.startswith(me + "::")
            )
            if target and not related:
                edges[me].add(target)
    return edges


def cycles(edges: dict) -> set:
    state, stack, found = {}, [], set()

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                found.add(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module)
    return found


def main() -> int:
    source = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "crates/lsmvault/src")
    edges = imports(source)
    problems = [f"import cycle: {cycle}" for cycle in sorted(cycles(edges))]
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            if module.startswith("ops::") and target.startswith("ops::"):
                if module.split("::")[1] != target.split("::")[1]:
                    problems.append(f"operation imports another operation: {module} -> {target}")
            layer, target_layer = module.split("::")[0], target.split("::")[0]
            if layer in LOWER_LAYERS and target_layer == "ops":
                problems.append(f"lower layer imports ops/: {module} -> {target}")
            if layer in ("codec", "lsm") and target_layer not in (layer,) + BOTTOM:
                problems.append(f"{layer}/ imports above the bottom layer: {module} -> {target}")
    for problem in problems:
        print(problem)
    modules = len(set(edges) | {t for targets in edges.values() for t in targets})
    print(f"{modules} modules, {sum(map(len, edges.values()))} imports, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
