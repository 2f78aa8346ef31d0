"""The run spec: every run option declared once, checked before any work.

torch-free by design: ``superpos --help`` and every bad-argument error finish
before torch, scipy or qiskit would have loaded. Modules:

* option.py    one :class:`Option` (type, default, allowed values, help) and its rule
* options.py   every option of train/compare/ablate/suites, and the tasks' protocols
* registry.py  names of tasks, perturbations, scopes, ... (built-in and plugins)
* arms.py      optimizer presets and the arm syntax
* run.py       a set of given values -> checked run settings (task options, arms, train)
* grid.py      an ablation grid over sweepable options, and its control

File-system checks (data files, outputs, memory) are experiments/preflight.py.
"""
