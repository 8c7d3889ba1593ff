import pkgutil
import subprocess
import sys
from pathlib import Path

import runner.engine

ROOT = Path(__file__).resolve().parents[2]


def test_every_engine_module_imports_without_django():
    # Given every module under runner/engine (found on disk, so new modules are covered too)
    modules = sorted(m.name for m in pkgutil.walk_packages(runner.engine.__path__, "runner.engine."))
    assert {"runner.engine.train", "runner.engine.prune", "runner.engine.quantize"} <= set(modules)
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n    importlib.import_module(name)\n"
            "assert 'django' not in sys.modules, sorted(m for m in sys.modules if m.startswith('django'))\n"
            "print('ok', len(sys.modules))")
    # When a fresh interpreter imports all of them
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    # Then none of them pulled Django in
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
