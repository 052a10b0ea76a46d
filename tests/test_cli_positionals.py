"""The tool verbs' leading positional paths (``soup A B``, ``compare DIR...``, ``report RUN_DIR``) become
their list or path option, every one of them, with or without options after them (``olmo2_lit/cli.py``)."""

import pytest

from olmo2_lit.cli import _positionals


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["compare", "A", "B"], ["compare", "--dirs+", "A", "--dirs+", "B"]),
        (["compare", "A", "B", "--out", "o"], ["compare", "--dirs+", "A", "--dirs+", "B", "--out", "o"]),
        (["soup", "A"], ["soup", "--checkpoints+", "A"]),
        (
            ["soup", "A", "B", "--out", "s"],
            ["soup", "--checkpoints+", "A", "--checkpoints+", "B", "--out", "s"],
        ),
        (["report", "R"], ["report", "--run_dir", "R"]),
        (["report", "--run_dir", "R"], ["report", "--run_dir", "R"]),
        (["generate", "--checkpoint", "c"], ["generate", "--checkpoint", "c"]),
    ],
)
def test_every_leading_path_becomes_the_verbs_option(argv, expected):
    assert _positionals(argv) == expected
