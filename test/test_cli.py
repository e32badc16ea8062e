"""The ``s2m`` command line: sub-commands come from ``s2m.commands`` entry-point plug-ins."""

from __future__ import annotations

import argparse
from importlib.metadata import EntryPoint

import pytest

from s2m_model import cli

GROUP = cli.ENTRY_POINT_GROUP
# Every command the installed package provides (the ROS plug-in adds three).
EXPECTED = ("body", "data", "demo", "detect", "eval", "export", "run", "train", "live",
            "eval-bag", "record")  # fmt: skip


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def test_installed_plugins_are_the_package_commands():
    names = [ep.name for ep in cli.command_entry_points()]
    assert names == sorted(names)
    missing = {"body", "data", "demo", "detect", "eval", "export", "run", "train", "ros"}
    missing -= set(names)
    assert not missing, f"entry points {missing} not installed: run `pip install -e .`"


def test_help_lists_every_command_with_one_line_help():
    parser = cli.build_parser(warn=pytest.fail)  # every installed plug-in loads
    text = parser.format_help()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    for name in EXPECTED:
        assert name in text, name
        assert helps.get(name) and "\n" not in helps[name], name


def test_a_broken_plugin_is_one_warning_line_and_the_rest_works(capsys):
    warnings: list[str] = []
    plugins = [
        _ep("broken", "s2m_no_such_module.cli:register"),
        _ep("eval", "s2m_model.eval.cli:register"),
        _ep("notfn", "s2m_model.cli:ENTRY_POINT_GROUP"),
        _ep("raises", "s2m_model.cli:main"),  # main(subparsers) fails inside argparse
    ]
    parser = cli.build_parser(plugins, warn=warnings.append)
    assert len(warnings) == 3, warnings
    assert all("\n" not in w and w.startswith("s2m: warning: command plug-in") for w in warnings)
    assert "'broken'" in warnings[0] and "ModuleNotFoundError" in warnings[0]
    assert "'notfn'" in warnings[1] and "not a register" in warnings[1]
    assert "'raises'" in warnings[2]
    args = parser.parse_args(["eval", "--method", "dik", "--data", "d", "--out", "o"])
    assert callable(args.func)
    assert "Traceback" not in capsys.readouterr().err


def test_default_warning_goes_to_stderr(capsys):
    cli.build_parser([_ep("broken", "s2m_no_such_module:register"),
                      _ep("eval", "s2m_model.eval.cli:register")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken" in err[0]


def test_no_plugins_at_all_is_a_clear_error(monkeypatch, capsys):
    with pytest.raises(RuntimeError, match="pip install"):
        cli.build_parser([])
    monkeypatch.setattr(cli, "command_entry_points", lambda: [])
    assert cli.main(["--help"]) == 2
    assert "no s2m commands are registered" in capsys.readouterr().err


def test_duplicate_entry_points_are_listed_once(monkeypatch):
    twice = [_ep("eval", "s2m_model.eval.cli:register")] * 2
    monkeypatch.setattr(cli, "entry_points", lambda group: twice if group == GROUP else [])
    assert [ep.name for ep in cli.command_entry_points()] == ["eval"]
