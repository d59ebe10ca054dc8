"""The published MWS-Vision-Bench validation leaderboard as data, and placing a score in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlmhyperbench.reporting.published_leaderboard import (
    COLUMNS,
    LeaderboardError,
    place,
    read_leaderboard,
)

COMMIT = "6632d62830fdb692ebe0beca8f4fb60fcceec12f"


@pytest.fixture(scope="module")
def board():
    return read_leaderboard()


def test_the_packaged_table_is_the_readme_at_the_pinned_commit(board) -> None:
    assert (board.commit, board.table_date, board.split) == (COMMIT, "2026-07-26", "validation")
    assert board.source_url.endswith(f"/blob/{COMMIT}/README.md")
    assert len(board.scores) == 46
    # the values the issue quotes
    overall = {model: values["overall"] for model, values in board.scores.items()}
    assert overall["Qwen2.5-VL-72B-Instruct"] == 0.621 and overall["GPT-4.1-mini"] == 0.659
    assert overall["Qwen3-VL-8B-Instruct"] == 0.584 and overall["Qwen3.5-0.8B"] == 0.319
    assert overall["GPT-5-mini"] == 0.639
    assert board.scores["Claude Fable 5"] == {
        "overall": 0.799, "ocr": 0.828, "markdown": 0.737, "grounding": 0.635, "kie": 0.843,
        "vqa": 0.950,
    }  # fmt: skip
    # a transcription guard: Overall is the mean of the five categories, up to the rounding of
    # six published values (at most 0.0005 + 0.0005), and the README lists by Overall
    for model, values in board.scores.items():
        mean = sum(values[c] for c in ("ocr", "markdown", "grounding", "kie", "vqa")) / 5
        assert abs(values["overall"] - mean) <= 0.001 + 1e-9, model
    assert list(overall.values()) == sorted(overall.values(), reverse=True)


@pytest.mark.parametrize(
    ("score", "ci", "text", "rank"),
    [
        (0.64, (0.62, 0.66), "0.640 [0.620, 0.660]: between GPT-5-mini 0.639 and "
         "Cotype VL (32B 8 bit) 0.649 on the 2026-07-26 validation table", 32),
        (0.81, None, "0.810: above every model (top: Claude Fable 5 0.799) on the 2026-07-26 "
         "validation table", 1),
        (0.2, (0.15, 0.25), "0.200 [0.150, 0.250]: below every model (bottom: Qwen3.5-0.8B "
         "0.319) on the 2026-07-26 validation table", 47),
        (0.6391, None, "0.639: level with GPT-5-mini 0.639 on the 2026-07-26 validation table", 32),
        (0.799, None, "0.799: level with Claude Fable 5 0.799 on the 2026-07-26 validation table",
         1),
        (0.319, None, "0.319: level with Qwen3.5-0.8B 0.319 on the 2026-07-26 validation table",
         46),
        (0.6738, None, "0.674: level with Gemini-3.1-flash-lite-preview / Gemini 3.5 Flash 0.674 "
         "on the 2026-07-26 validation table", 21),
        (0.676, None, "0.676: between Gemini-3.1-flash-lite-preview / Gemini 3.5 Flash 0.674 and "
         "Gemini-3-flash-preview 0.681 on the 2026-07-26 validation table", 21),
    ],
)  # fmt: skip
def test_place_overall(board, score, ci, text, rank) -> None:
    placement = place(board, score, ci)
    assert placement.text == text
    assert (placement.rank, placement.models) == (rank, 46)


def test_place_ties_neighbours_and_ci(board) -> None:
    placement = place(board, 0.676, (0.66, 0.69))
    assert [m for m, _ in placement.below] == ["Gemini-3.1-flash-lite-preview", "Gemini 3.5 Flash"]
    assert placement.above == (("Gemini-3-flash-preview", 0.681),)
    assert placement.tied == ()
    assert placement.within_ci == (  # 0.690 down to 0.662, both ends of the CI included
        "Gemini-2.5-pro", "Kimi K2 Instruct", "Cotype Light 3", "GPT-5.4", "Claude Sonnet 4.6",
        "Gemini-3-flash-preview", "Gemini-3.1-flash-lite-preview", "Gemini 3.5 Flash",
        "Gemini-2.5-flash", "Claude-4.5-Opus", "Qwen3.5-35B-A3B", "Claude-4.5-Sonnet", "GPT-5.2",
        "Alice AI VLM dev",
    )  # fmt: skip
    level = place(board, 0.6744)
    assert level.tied == (("Gemini-3.1-flash-lite-preview", 0.674), ("Gemini 3.5 Flash", 0.674))
    assert level.above == (("Gemini-3-flash-preview", 0.681),)
    assert level.below == (("Gemini-2.5-flash", 0.672),)
    assert place(board, 0.671).below == (("Claude-4.5-Opus", 0.670), ("Qwen3.5-35B-A3B", 0.670))


def test_place_a_category(board) -> None:
    placement = place(board, 0.5, column="grounding")
    assert placement.text == (
        "grounding 0.500: between Claude-4.5-Sonnet 0.459 and GPT-5.6 Luna 0.547 on the "
        "2026-07-26 validation table"
    )
    with pytest.raises(LeaderboardError, match=r"no column 'anti_fraud'"):
        place(board, 0.5, column="anti_fraud")


def test_a_private_test_score_is_not_placed_in_the_validation_table(board) -> None:
    with pytest.raises(LeaderboardError, match=r"a test score is not comparable with the "
                                                r"validation table \(2026-07-26\)"):  # fmt: skip
        place(board, 0.6, split="test")
    with pytest.raises(LeaderboardError, match=r"the CI \[0.61, 0.7\] does not contain"):
        place(board, 0.6, (0.61, 0.7))


ROW = "https://x/README.md,abc,2026-07-26,validation,{model},{overall},0.5,0.5,0.5,0.5,0.5"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([",".join(c for c in COLUMNS if c != "kie")], r"t.csv:1: missing column\(s\) \['kie'\]"),
        ([",".join(COLUMNS), ROW.format(model="A", overall="n/a")],
         r"t.csv:2: overall: not a number: 'n/a'"),
        ([",".join(COLUMNS), ROW.format(model="A", overall="1.5")],
         r"t.csv:2: overall: 1.5 is outside \[0, 1\]"),
        ([",".join(COLUMNS), ROW.format(model="A", overall="0.5"),
          ROW.format(model="A", overall="0.4")], r"t.csv:3: model 'A' listed twice"),
        ([",".join(COLUMNS), ROW.format(model="A", overall="0.5"),
          ROW.format(model="B", overall="0.4").replace("2026-07-26", "2026-07-23")],
         r"t.csv:3: table_date '2026-07-23' differs from the first row's '2026-07-26'"),
        ([",".join(COLUMNS)], r"t.csv: no rows"),
    ],
)  # fmt: skip
def test_a_bad_table_names_line_and_column(tmp_path: Path, lines, message) -> None:
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(LeaderboardError, match=message):
        read_leaderboard(path)
    with pytest.raises(LeaderboardError, match=r"nowhere.csv: not found"):
        read_leaderboard(tmp_path / "nowhere.csv")
