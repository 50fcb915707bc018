"""The shape of the package: import graph, module sizes, private names.

These are the rules of `../shared/DESIGN.md` checked on the source, so a
change that breaks one fails here with the offending module named.
"""
import ast
import pathlib

import muax

PACKAGE = pathlib.Path(muax.__file__).parent
MAX_MODULE_LINES = 450
# The façade documents the public API in its docstrings (about 170 lines of
# them): the class is held to MAX_FACADE_LINES in all and to MAX_FACADE_CODE
# lines that are not docstrings, comments or blank.
FACADE = "muax.model"
MAX_FACADE_LINES = 400
MAX_FACADE_CODE = 190
# `nn._init_*_func` are the documented network factories (API.md names them).
DOCUMENTED_PRIVATE = {("nn", "_init_representation_func"), ("nn", "_init_prediction_func"),
                      ("nn", "_init_dynamic_func")}


def _modules():
  """`{dotted name: parsed tree}` of every module of the package."""
  out = {}
  for file in sorted(PACKAGE.rglob("*.py")):
    parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    out[name] = (file, ast.parse(file.read_text(), str(file)))
  return out


def _import_graph(modules):
  """Edges `module -> muax modules it imports`, nested (function-level) imports
  included; `from muax import x` is an edge to `muax.x` when that is a module."""
  graph = {name: set() for name in modules}
  for name, (_, tree) in modules.items():
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        graph[name].update(a.name for a in node.names if a.name in modules)
      elif isinstance(node, ast.ImportFrom) and node.module in modules:
        subs = {f"{node.module}.{a.name}" for a in node.names} & set(modules)
        graph[name].update(subs)
        if len(subs) < len(node.names) and node.module != name:
          graph[name].add(node.module)
  return graph


def _cycle(graph):
  """One import cycle as a list of modules, or None."""
  state = {}

  def visit(node, path):
    state[node] = "open"
    for nxt in sorted(graph[node]):
      if state.get(nxt) == "open":
        return path[path.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt, path + [nxt])
        if found:
          return found
    state[node] = "done"
    return None

  for start in sorted(graph):
    if start not in state:
      found = visit(start, [start])
      if found:
        return found
  return None


def test_the_cycle_finder_finds_a_cycle():
  assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
  cycle = _cycle(_import_graph(_modules()))
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_core_imports_no_runner_or_facade():
  graph = _import_graph(_modules())
  allowed = {"muax.support", "muax.checks"}
  for name, imported in graph.items():
    if name.startswith("muax.core"):
      outside = {m for m in imported if not m.startswith("muax.core")} - allowed
      assert not outside, f"{name} imports {sorted(outside)}"
  for name, imported in graph.items():
    if name.startswith(("muax.core", "muax.variants", "muax.loop")) or name in (
        "muax.acting", "muax.gym_envs"):
      assert "muax.model" not in imported, f"{name} imports the façade (muax.model)"


def test_no_private_name_used_across_modules():
  modules = _modules()
  short = {name.rsplit(".", 1)[-1] for name in modules}
  found = []
  for name, (_, tree) in modules.items():
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("muax"):
        found += [(name, node.module, a.name) for a in node.names
                  if a.name.startswith("_") and not a.name.startswith("__")]
      if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
          and node.value.id in short and node.attr.startswith("_")
          and not node.attr.startswith("__")
          and (node.value.id, node.attr) not in DOCUMENTED_PRIVATE):
        found.append((name, node.value.id, node.attr))
  assert not found, f"private names used across modules: {sorted(set(found))}"


def test_no_module_over_the_size_limit():
  sizes = {name: len(file.read_text().splitlines())
           for name, (file, _) in _modules().items()}
  large = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
  assert not large, f"modules over {MAX_MODULE_LINES} lines: {large}"


def _code_lines(source: str, node) -> int:
  """Lines of `node` that are not docstrings, comments or blank."""
  docs = set()
  for inner in ast.walk(node):
    if isinstance(inner, (ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(inner):
      first = inner.body[0]
      docs.update(range(first.lineno, first.end_lineno + 1))
  lines = source.splitlines()
  return sum(1 for i in range(node.lineno, node.end_lineno + 1)
             if i not in docs and lines[i - 1].strip()
             and not lines[i - 1].strip().startswith("#"))


def test_the_facade_class_stays_small():
  file, tree = _modules()[FACADE]
  facade = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MuZero")
  code = _code_lines(file.read_text(), facade)
  assert code <= MAX_FACADE_CODE, f"MuZero has {code} lines of code (> {MAX_FACADE_CODE})"
  lines = facade.end_lineno - facade.lineno + 1
  assert lines <= MAX_FACADE_LINES, f"MuZero is {lines} lines long (> {MAX_FACADE_LINES})"


def _untyped(tree):
  """`[(qualified name, missing)]` of the public functions and methods of a module
  that lack a parameter annotation (self/cls aside) or a return annotation."""
  found = []

  def visit(body, prefix, in_class):
    for node in body:
      if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
        visit(node.body, f"{prefix}{node.name}.", True)
      elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
        args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
        if in_class and args and args[0].arg in ("self", "cls"):
          args = args[1:]
        args += [a for a in (node.args.vararg, node.args.kwarg) if a is not None]
        missing = [a.arg for a in args if a.annotation is None]
        if node.returns is None:
          missing.append("return")
        if missing:
          found.append((prefix + node.name, missing))

  visit(tree.body, "", False)
  return found


def test_the_untyped_finder_finds_a_missing_annotation():
  tree = ast.parse("def f(a: int, b) -> int: ...\nclass C:\n  def m(self, x: int): ...\n"
                   "def g(a: int) -> None: ...\ndef _h(a): ...\n")
  assert _untyped(tree) == [("f", ["b"]), ("C.m", ["return"])]


def test_every_public_function_is_typed():
  untyped = {name: found for name, (_, tree) in _modules().items()
             if (found := _untyped(tree))}
  assert not untyped, f"public functions without annotations: {untyped}"
