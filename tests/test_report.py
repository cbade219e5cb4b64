"""report.md says what the console said: a reader of the report alone must learn that
models learned nothing, or that no ranking was measured."""
from depthnas.report import warnings_of, write_report


def summary(archs, ranking=None, **extra):
    best = min(archs, key=lambda a: a["val_loss"])
    return {"space": "v1-sync", "landmarks": True, "elapsed_s": 60.0, "ranking": ranking,
            "score_name": "SSI loss",
            "best": {"string": best["arch"], "val_loss": best["val_loss"], "params": 1000,
                     "found_in": best["role"]},
            "architectures": archs, **extra}


def arch(name, role, val_loss, supernet_score):
    return {"arch": f"v1-sync:{name}", "role": role, "val_loss": val_loss,
            "supernet_score": supernet_score, "landmark": role == "landmark", "params": 1000}


def test_models_at_a_constant_predictions_level_are_flagged(tmp_path):
    archs = [arch("c3,c3,c3,c3,c3", "top-1", 0.150, 0.16),
             arch("c1,c1,c1,c1,c1", "landmark", 0.199, 0.20),     # within 1% of 0.2: nothing learned
             arch("ap,ap,ap,ap,ap", "landmark", 0.210, 0.2001)]   # and a flat super-net path
    text = write_report(tmp_path, summary(archs, constant_prediction_loss=0.2,
                                          search_constant_loss=0.2, picks=2, flat_picks=1,
                                          rank_samples=0)).read_text()
    assert "- a constant prediction's validation SSI loss: 0.20000" in text
    assert ("- 2 of 3 architectures trained stand-alone scored no better than a constant "
            "prediction (0.20000): they learned nothing") in text
    assert "- 1 of the 2 architectures the search picked ignored their input in the super-net" in text
    assert "- no ranking measured: it needs at least 2 random architectures trained stand-alone, " \
           "and `search.rank_samples` is 0" in text
    rows = {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| `")}
    assert rows["v1-sync:c3,c3,c3,c3,c3"].endswith("| 0.15000 | 0.16000 |")
    assert rows["v1-sync:c1,c1,c1,c1,c1"].endswith("| 0.19900 * | 0.20000 * |")
    assert rows["v1-sync:ap,ap,ap,ap,ap"].endswith("| 0.21000 * | 0.20010 * |")


def test_a_space_too_small_for_the_ranking_sample_is_said_so_not_blamed_on_the_setting(tmp_path):
    """With rank_samples 3 and one model left, the report said the ranking needs 2 'and
    search.rank_samples is 3'."""
    archs = [arch("c3,c3,c3,c3,c3", "top-1", 0.150, 0.16), arch("c1,c1,c1,c1,c1", "rank", 0.19, 0.2)]
    text = write_report(tmp_path, summary(archs, rank_samples=3)).read_text()
    assert ("- no ranking measured: `search.rank_samples` asked for 3 random architectures trained "
            "stand-alone, and the space had 1 left that the landmarks and the searched picks had "
            "not taken; a ranking needs at least 2") in text


def test_a_super_net_that_beat_no_constant_prediction_is_said_so(tmp_path):
    """make search's super-net once scored every path 0.2018-0.2185 against a constant
    prediction's 0.20036: none was marked, and nothing said the picks were noise."""
    archs = [arch("c3,c3,c3,c3,c3", "top-1", 0.177, 0.2044),
             arch("c1,c1,c1,c1,c1", "rank", 0.175, 0.1985),       # within 1%: no better
             arch("ap,ap,ap,ap,ap", "landmark", 0.173, 0.19)]
    text = write_report(tmp_path, summary(archs, constant_prediction_loss=0.2,
                                          search_constant_loss=0.2, picks=2, flat_picks=0,
                                          unlearned_searches=[1, 2], rank_samples=3)).read_text()
    assert ("- in searches 1, 2 no path the search scored on the super-net did better than a "
            "constant prediction (0.20000): the super-net had not learned yet") in text
    rows = {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| `")}
    assert rows["v1-sync:c3,c3,c3,c3,c3"].endswith("| 0.17700 | 0.20440 * |")
    assert rows["v1-sync:c1,c1,c1,c1,c1"].endswith("| 0.17500 | 0.19850 * |")
    assert rows["v1-sync:ap,ap,ap,ap,ap"].endswith("| 0.17300 | 0.19000 |")


def test_an_undefined_or_rough_ranking_is_explained(tmp_path):
    nan = float("nan")
    archs = [arch("c3,c3,c3,c3,c3", "rank", 0.15, 0.2), arch("c1,c1,c1,c1,c1", "rank", 0.17, 0.2),
             arch("ap,ap,ap,ap,ap", "rank", 0.18, nan)]
    undefined = {"n": 3, "kendall_tau": nan, "sparse_kendall_tau": nan, "sparse_threshold": 2e-4,
                 "spearman_rho": nan, "top_percentile": 50.0, "non_finite": 1}
    text = write_report(tmp_path, summary(archs, undefined)).read_text()
    # named here: the search printed it once with names, then again without
    assert "- 1 ranking sample(s) scored non-finite in the super-net (diverged) and are left out " \
           "of the ranking: v1-sync:ap,ap,ap,ap,ap" in text
    assert "- the ranking is undefined: fewer than 2 samples are left, or every super-net score" in text
    assert "| 3 | undefined | undefined (0.0002) | undefined | 50% |" in text  # not "+nan"
    from depthnas.rank_correlation import ranking_report
    few = {**ranking_report([0.1, 0.2], [0.5, nan]), "non_finite": 1}  # n < 2: no threshold either
    text = write_report(tmp_path, summary(archs[:2], few)).read_text()
    assert "| 1 | undefined | undefined (undefined) | undefined | undefined |" in text
    rough = {"n": 3, "kendall_tau": 1 / 3, "sparse_kendall_tau": 1 / 3, "sparse_threshold": 2e-4,
             "spearman_rho": 0.5, "top_percentile": 33.0}
    archs = archs[:2]
    text = write_report(tmp_path, summary(archs, rough)).read_text()
    assert "- with n = 3, Kendall tau moves in steps of about 0.67: a rough figure" in text
    assert "ranking samples learned nothing" not in text
    # the stand-alone order it is measured against: one of two at a constant prediction's level
    text = write_report(tmp_path, summary(archs, rough, constant_prediction_loss=0.16)).read_text()
    assert ("- 1 of the 2 ranking samples learned nothing stand-alone: the order the ranking "
            "is measured against is mostly noise") in text


def test_a_dead_cell_is_marked_and_a_dead_best_is_warned_about(tmp_path):
    """v1-sync:none,none,none,none,c3 outputs the same map for every image: it was the
    best of a search where every model learned nothing, and the report said no more."""
    dead = {**arch("none,none,none,none,c3", "top-1", 0.1798, 0.1798), "ignores_input": True}
    archs = [dead, arch("c3,c3,c3,c3,c3", "landmark", 0.203, 0.21)]
    text = write_report(tmp_path, summary(archs, constant_prediction_loss=0.2)).read_text()
    assert "- the best architecture found has a dead cell: its output is the same for every image" in text
    rows = {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| `")}
    assert rows["v1-sync:none,none,none,none,c3"].startswith("| `v1-sync:none,none,none,none,c3` (dead cell) |")
    assert rows["v1-sync:none,none,none,none,c3"].endswith("| 0.17980 * | 0.17980 * |")
    assert "or a dead cell (the output ignores the input)" in text
    # a classifier has no constant level to be at, but its dead-cell picks are said
    text = write_report(tmp_path, summary(archs, picks=2, flat_picks=1)).read_text()
    assert "- 1 of the 2 architectures the search picked ignored their input in the super-net " \
           "(cut off by a dead cell)" in text


def test_the_roles_line_names_the_roles_the_table_holds(tmp_path):
    spos = [arch("c3,c3,c3,c3,c3", "top-1", 0.15, 0.2), arch("c1,c1,c1,c1,c1", "rank", 0.17, 0.2)]
    text = write_report(tmp_path, summary(spos)).read_text()
    assert ("Roles: `top-N`, picked by the search after iteration N; `rank`, a random sample "
            "that only measures the ranking.") in text


def test_a_landmark_over_the_budget_is_marked(tmp_path):
    """Landmarks are drawn without --max-params: one over it headed the table above the
    best found, with no word why it was not the best."""
    over = {**arch("c3,c3,c3,c3,c3", "landmark", 0.15, 0.2), "over_budget": True}
    archs = [over, arch("c1,c1,c1,c1,c1", "top-1", 0.17, 0.2)]
    text = write_report(tmp_path, {**summary(archs), "best": {
        "string": archs[1]["arch"], "val_loss": 0.17, "params": 1000, "found_in": "top-1"}}).read_text()
    assert "| `v1-sync:c3,c3,c3,c3,c3` (over budget) | landmark |" in text
    assert "(over budget): a landmark that breaks `search.max_params`" in text
    # the headline said "the lowest ... among the landmarks", above a lower landmark's row
    assert "among the landmarks and the searched top-K within the budget (the random" in text


def test_a_best_architecture_mostly_upside_down_is_warned_about(tmp_path):
    """Its SSI loss cannot show it (the fit takes a negative scale); its exported model
    would show near things dark."""
    best = {**arch("c3,c3,c3,c3,c3", "top-1", 0.15, 0.16), "inverted": 75.0}
    fine = {**arch("c1,c1,c1,c1,c1", "landmark", 0.17, 0.18), "inverted": 100.0}  # not the best
    text = write_report(tmp_path, summary([best, fine])).read_text()
    assert "- the best architecture found: on 75% of the validation images the model's output has " \
           "near and far swapped" in text
    best["inverted"] = 50.0  # half: no majority, no warning
    assert "near and far swapped" not in write_report(tmp_path, summary([best, fine])).read_text()
    best["inverted"] = 75.0  # a model that learned nothing is said to be one, not upside down
    text = write_report(tmp_path, summary([best, fine], constant_prediction_loss=0.151)).read_text()
    assert "near and far swapped" not in text and "learned nothing" in text


def test_samples_skipped_for_bad_input_are_listed_among_the_warnings(tmp_path):
    """--skip-bad said so once, at the start of a long log; the report did not."""
    archs = [arch("c3,c3,c3,c3,c3", "top-1", 0.15, 0.16)]
    skipped = ["images/a.jpg: cannot read", "depth/b.npy: NaN", "depth/c.png: 4x4, image 8x8",
               "images/d.jpg: cannot read"]
    text = write_report(tmp_path, summary(archs, skipped_samples=skipped)).read_text()
    assert "- 4 sample(s) with bad input were skipped (--skip-bad; listed in splits.json): " \
           "images/a.jpg: cannot read; depth/b.npy: NaN; depth/c.png: 4x4, image 8x8 ..." in text
    assert "skipped" not in write_report(tmp_path, summary(archs)).read_text()


def test_the_level_super_net_scores_are_judged_by_is_stated_when_it_differs(tmp_path):
    """With search.val_batches the super-net is scored on part of the split: its scores
    were marked against a level (0.16965) the report's header did not give (0.18640)."""
    archs = [arch("c3,c3,c3,c3,c3", "top-1", 0.150, 0.171),
             arch("c1,c1,c1,c1,c1", "landmark", 0.160, 0.165)]
    text = write_report(tmp_path, summary(archs, constant_prediction_loss=0.1864,
                                          search_constant_loss=0.16965, rank_samples=0)).read_text()
    assert ("- on the validation batches the search scores super-net paths on: 0.16965 "
            "(`search.val_batches`); super-net scores are judged by this") in text
    rows = {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| `")}
    assert rows["v1-sync:c3,c3,c3,c3,c3"].endswith("| 0.15000 | 0.17100 * |")
    same = write_report(tmp_path, summary(archs, constant_prediction_loss=0.1864,
                                          search_constant_loss=0.1864, rank_samples=0)).read_text()
    assert "on the validation batches" not in same


def test_a_ranking_of_super_net_scores_at_the_constant_level_is_called_noise(tmp_path):
    """make search once reported Kendall tau +1.000 on 3 samples whose super-net scores
    (0.1995, 0.2011, 0.2051) were all within 1% of a constant prediction's 0.20036, each
    marked * in the table, with nothing said beside the tau."""
    archs = [arch("c3,c3,c3,c3,c3", "rank", 0.175, 0.1995), arch("c1,c1,c1,c1,c1", "rank", 0.179, 0.2011),
             arch("ap,ap,ap,ap,ap", "rank", 0.194, 0.2051), arch("skip,c3,c3,c3,c3", "landmark", 0.173, 0.19),
             arch("c3,skip,c3,c3,c3", "top-1", 0.180, 0.18)]
    perfect = {"n": 3, "kendall_tau": 1.0, "sparse_kendall_tau": 1.0, "sparse_threshold": 2e-4,
               "spearman_rho": 1.0, "top_percentile": 33.3}
    text = write_report(tmp_path, summary(archs, perfect, constant_prediction_loss=0.20036,
                                          search_constant_loss=0.20036)).read_text()
    assert ("- 3 of the 3 ranking samples score no better than a constant prediction (0.20036) in "
            "the final super-net: its order of them, and the Kendall tau, are mostly noise") in text
    # the winner is a landmark: the report says what it was chosen among, and the best pick
    assert "role landmark): the lowest stand-alone SSI loss among the landmarks and the searched top-K" in text
    # a plain SPOS run has no landmarks to choose among (it said it had)
    spos = [a for a in archs if a["role"] != "landmark"]
    text = write_report(tmp_path, summary(spos, perfect, landmarks=False)).read_text()
    assert "): the lowest stand-alone SSI loss among the searched top-K (the random" in text
    assert "- best searched pick: `v1-sync:c3,skip,c3,c3,c3` (top-1, stand-alone SSI loss 0.18000)" in text
    live = [dict(a, supernet_score=0.15 + i / 100) if a["role"] == "rank" else a
            for i, a in enumerate(archs)]
    text = write_report(tmp_path, summary(live, perfect, constant_prediction_loss=0.20036,
                                          search_constant_loss=0.20036)).read_text()
    assert "in the final super-net: its order" not in text


def test_the_best_searched_pick_named_beside_a_landmark_winner_is_the_lowest_loss_pick(tmp_path):
    archs = [arch("c3,c3,c3,c3,c3", "landmark", 0.10, 0.3), arch("c1,c1,c1,c1,c1", "top-1", 0.25, 0.3),
             arch("ap,c1,c1,c1,c1", "top-2", 0.15, 0.3), arch("skip,c1,c1,c1,c1", "top-2", 0.35, 0.3)]
    text = write_report(tmp_path, summary(archs, rank_samples=0)).read_text()
    assert "- best searched pick: `v1-sync:ap,c1,c1,c1,c1` (top-2, stand-alone SSI loss 0.15000)" in text
    # results.json of an older run (no best_searched): a pick that ignores its input
    # comes last, as the search's own choice of its best does
    archs[2]["ignores_input"] = True
    text = write_report(tmp_path, summary(archs, rank_samples=0)).read_text()
    assert "- best searched pick: `v1-sync:c1,c1,c1,c1,c1` (top-1, stand-alone SSI loss 0.25000)" in text


def test_training_curves_mark_the_boundaries_between_iterations_not_the_end():
    from depthnas.report_plots import _iteration_ends
    log = [{"phase": "supernet", "step": s} for s in (1, 2)] + [{"phase": "search"}] + \
          [{"phase": "supernet", "step": s} for s in (3, 4)] + [{"phase": "search"}]
    assert _iteration_ends(log) == [2]


def test_flat_ranking_samples_are_judged_by_the_search_batches_level_and_half_counts():
    """Stand-alone level 0.3, the search batches' 0.2: a super-net score of 0.199 is flat."""
    archs = [arch("c3,c3,c3,c3,c3", "rank", 0.1, 0.199), arch("c1,c1,c1,c1,c1", "rank", 0.11, 0.1)]
    ranking = {"n": 12, "kendall_tau": 0.5, "non_finite": 0}
    notes = warnings_of(summary(archs, ranking, constant_prediction_loss=0.3, search_constant_loss=0.2))
    assert any("1 of the 2 ranking samples score no better" in n for n in notes), notes


def test_a_ranking_of_10_is_not_called_rough():
    archs = [arch("c3,c3,c3,c3,c3", "rank", 0.1, 0.1), arch("c1,c1,c1,c1,c1", "rank", 0.11, 0.12)]
    notes = warnings_of(summary(archs, {"n": 10, "kendall_tau": 0.5, "non_finite": 0},
                                constant_prediction_loss=1.0))
    assert not any("rough figure" in n for n in notes), notes


def test_only_diverged_ranking_samples_are_named_as_diverged():
    nan = float("nan")
    archs = [arch("c3,c3,c3,c3,c3", "top-1", 0.1, nan), arch("c1,c1,c1,c1,c1", "rank", 0.11, nan),
             arch("ap,ap,ap,ap,ap", "rank", 0.12, 0.1)]
    notes = warnings_of(summary(archs, {"n": 12, "kendall_tau": 0.5, "non_finite": 1},
                                constant_prediction_loss=1.0))
    note = next(n for n in notes if "non-finite" in n)
    assert "c1,c1,c1,c1,c1" in note and "c3,c3,c3,c3,c3" not in note


def test_the_ranking_table_shows_each_metric_in_its_own_column(tmp_path):
    archs = [arch("c3,c3,c3,c3,c3", "rank", 0.1, 0.2), arch("c1,c1,c1,c1,c1", "rank", 0.11, 0.21)]
    ranking = {"n": 12, "kendall_tau": 0.25, "sparse_kendall_tau": 0.75, "sparse_threshold": 0.002,
               "spearman_rho": 0.5, "top_percentile": 37.5}
    text = write_report(tmp_path, summary(archs, ranking)).read_text()
    assert "| 12 | +0.250 | +0.750 (0.002) | +0.500 | 38% |" in text


def test_the_table_of_architectures_is_ordered_by_stand_alone_loss(tmp_path):
    archs = [arch("c3,c3,c3,c3,c3", "landmark", 0.30, 0.1), arch("c1,c1,c1,c1,c1", "top-1", 0.10, 0.3),
             arch("ap,ap,ap,ap,ap", "rank", 0.20, 0.2)]
    text = write_report(tmp_path, summary(archs)).read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `v1-sync:")]
    assert [r.split("`")[1] for r in rows] == ["v1-sync:c1,c1,c1,c1,c1", "v1-sync:ap,ap,ap,ap,ap",
                                               "v1-sync:c3,c3,c3,c3,c3"]


def test_no_ranking_is_held_against_the_papers_sample_of_the_same_task():
    """The paper ranks 20 depth decoders and 200 CIFAR-10 cells; a NAS-Bench-201 run was
    told 20."""
    archs = [arch("c3,c3,c3,c3,c3", "top-1", 0.1, 0.1)]
    depth = warnings_of(summary(archs, rank_samples=0))
    cells = warnings_of({**summary(archs, rank_samples=0), "space": "nb201"})
    assert any("(the paper ranks 20)" in n for n in depth), depth
    assert any("(the paper ranks 200)" in n for n in cells), cells


NB201_ARCH = "|skip_connect~0|+|avg_pool_3x3~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"


def rows_of(text):
    return {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| `")}


# R1
def test_a_single_skipped_sample_is_warned_of_too(tmp_path):
    archs = [arch("c3,c3,c3,c3,c3", "top-1", 0.15, 0.16)]
    text = write_report(tmp_path, summary(archs, skipped_samples=["images/a.jpg: cannot read"])).read_text()
    assert "- 1 sample(s) with bad input were skipped (--skip-bad; listed in splits.json): " \
           "images/a.jpg: cannot read" in text


# R2
def test_learned_nothing_is_judged_by_the_stand_alone_loss_not_the_super_net_score():
    archs = [arch("c3,c3,c3,c3,c3", "top-1", 0.10, 0.10),
             arch("c1,c1,c1,c1,c1", "landmark", 0.199, 0.10)]  # learned nothing stand-alone
    notes = warnings_of(summary(archs, rank_samples=0, constant_prediction_loss=0.2))
    assert any(n.startswith("1 of 2 architectures trained stand-alone scored no better") for n in notes), notes


# R15
def test_an_nb201_string_does_not_split_the_table_s_cells(tmp_path):
    archs = [{**arch("x", "top-1", 0.1, 0.2), "arch": NB201_ARCH}]
    text = write_report(tmp_path, {**summary(archs, rank_samples=0), "space": "nb201"}).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `") and "skip_connect~0" in line)
    assert row.startswith("| `\\|skip_connect~0\\|+\\|avg_pool_3x3~0\\|none~1\\|+")
    assert row.replace("\\|", "").count("|") == 5  # 4 columns


# R16
def test_the_stand_alone_column_is_marked_by_the_split_s_level_not_the_search_batches(tmp_path):
    """Stand-alone level 0.3, the search batches' 0.2: a stand-alone loss of 0.25 learned
    something; a super-net score of 0.25 did not."""
    archs = [arch("c3,c3,c3,c3,c3", "top-1", 0.25, 0.25)]
    text = write_report(tmp_path, summary(archs, constant_prediction_loss=0.3,
                                          search_constant_loss=0.2, rank_samples=0)).read_text()
    assert rows_of(text)["v1-sync:c3,c3,c3,c3,c3"].endswith("| 0.25000 | 0.25000 * |")


# R17
def test_the_wall_time_is_in_minutes_or_in_seconds_under_one(tmp_path):
    archs = [arch("c3,c3,c3,c3,c3", "top-1", 0.15, 0.16)]
    text = write_report(tmp_path, {**summary(archs), "elapsed_s": 5400.0}).read_text()
    assert "- wall time: 90.0 min" in text
    # a short run's was "0.0 min"
    text = write_report(tmp_path, {**summary(archs), "elapsed_s": 2.4}).read_text()
    assert "- wall time: 2 s" in text


# R18
def test_table_and_store_entries_are_marked_by_their_source(tmp_path):
    archs = [{**arch("c3,c3,c3,c3,c3", "landmark", 0.15, 0.16), "source": "truth table"},
             {**arch("c1,c1,c1,c1,c1", "landmark", 0.17, 0.18), "source": "landmark store"}]
    rows = rows_of(write_report(tmp_path, summary(archs)).read_text())
    assert "| 0.15000 (table) |" in rows["v1-sync:c3,c3,c3,c3,c3"]
    assert "| 0.17000 (stored) |" in rows["v1-sync:c1,c1,c1,c1,c1"]
