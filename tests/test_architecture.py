"""The package's shape: no import cycles, small modules, short functions with few parameters.

Read from the source with the standard library's ``ast``, so it checks what a reader sees:

- no module of ``ssd_deploy`` imports, directly or through others, a module that imports it back
  (a module importing its own package, whose ``__init__`` imports the module, counts);
- no module over :data:`MAX_MODULE_LINES` lines;
- no function over :data:`MAX_FUNCTION_LINES` lines or with more than :data:`MAX_PARAMETERS`
  parameters (``self``/``cls`` not counted), unless the comment block right above the ``def``
  says why it must, starting with the count (``# Nine parameters: ...``, ``# 70 lines: ...``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ssd_deploy"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_PARAMETERS = 7
EXCUSE = re.compile(r"#\s*\w+ (parameters|lines):")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The ssd_deploy modules ``name`` imports, at any depth of its code (also inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # "from pkg import sub" imports the submodule; "from pkg import name" runs pkg/__init__.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in modules and target != name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
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
                    components.append(sorted(component))
    return components


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_modules_are_small():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {name: size for name, size in sizes.items() if size > MAX_MODULE_LINES} == {}


def _excused(lines: list[str], node: ast.AST) -> bool:
    """Whether the comment block right above ``node`` (above its decorators) starts with an excuse."""
    first = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list]) - 2
    block = []
    while first >= 0 and lines[first].strip().startswith("#"):
        block.insert(0, lines[first].strip())
        first -= 1
    return bool(block) and EXCUSE.match(block[0]) is not None


def test_functions_are_short_with_few_parameters():
    too_long, too_many = [], []
    for name, path in _modules().items():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or _excused(lines, node):
                continue
            length = node.end_lineno - node.lineno + 1
            arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            count = len(arguments) - (1 if arguments and arguments[0].arg in ("self", "cls") else 0)
            if length > MAX_FUNCTION_LINES:
                too_long.append(f"{name}.{node.name}: {length} lines")
            if count > MAX_PARAMETERS:
                too_many.append(f"{name}.{node.name}: {count} parameters")
    assert too_long == [] and too_many == []
