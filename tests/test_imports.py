"""
The one-way doors, read from the source (ast): the core never imports a
feature, a feature never imports another, and no import cycle joins two
files, nor two rooms (a subpackage, or a file directly in a top-level
package), outside bench/. Every import counts, those inside functions too:
a lazy import hides a cycle from Python, not from the reader.
"""

from __future__ import annotations

import ast
import os

from switchboard import features

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("switchboard", "alarm", "callback", "broadcast", "board", "lab", "tests")  # bench/ is left out


def modules() -> dict[str, str]:
    """Dotted module name -> file, for every module of PACKAGES."""
    found = {}
    for top in PACKAGES:
        for folder, subfolders, files in os.walk(os.path.join(PROJECT, top)):
            subfolders[:] = [d for d in subfolders
                             if os.path.exists(os.path.join(folder, d, "__init__.py"))]
            for name in files:
                if name.endswith(".py"):
                    dotted = os.path.relpath(os.path.join(folder, name[:-3]), PROJECT)
                    dotted = dotted.replace(os.sep, ".").removesuffix(".__init__")
                    found[dotted] = os.path.join(folder, name)
    return found


def imports(known: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the project's modules it imports (a name from a package: the package)."""

    def nearest(name):
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for module, path in known.items():
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        out = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                out.update(nearest(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}" if base else parent
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    out.add(full if full in known else nearest(base))
        out.discard("")
        out.discard(module)
        graph[module] = out
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def room(module: str) -> str:
    """switchboard.agi.server -> switchboard.agi; switchboard.storage -> itself."""
    return ".".join(module.split(".")[:2])


def feature_packages() -> dict[str, str]:
    """Feature name -> the package its declaration lives in (e.g. switchboard.hotline)."""
    return {f.name: type(f).__module__.rpartition(".")[0] for f in features.installed()}


def owner(module: str, packages: dict[str, str]) -> str | None:
    for name, package in packages.items():
        if module == package or module.startswith(package + "."):
            return name
    return None


KNOWN = modules()
GRAPH = imports(KNOWN)


def test_the_walker_sees_imports_inside_functions_and_relative_ones():
    assert "switchboard.hotline.cli" in GRAPH["switchboard.hotline.plugin"]  # in a method
    assert "switchboard.migrations" in GRAPH["switchboard.storage"]  # in Database.migrate
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_core_imports_no_feature():
    packages = feature_packages()
    assert set(packages.values()) == {"alarm", "board", "broadcast", "callback",
                                      "switchboard.hotline"}
    crossings = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module.startswith("switchboard") and owner(module, packages) is None
        for target in targets if owner(target, packages) is not None)
    assert crossings == []


def test_a_feature_imports_no_other_feature():
    packages = feature_packages()
    crossings = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items() if owner(module, packages)
        for target in targets
        if owner(target, packages) not in (None, owner(module, packages)))
    assert crossings == []


def test_no_import_cycle_between_files():
    assert cycles(GRAPH) == []


def test_no_import_cycle_between_rooms():
    rooms = {}
    for module, targets in GRAPH.items():
        rooms.setdefault(room(module), set()).update(
            room(t) for t in targets if room(t) != room(module))
    assert cycles(rooms) == []
