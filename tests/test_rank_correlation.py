"""Ranking metrics on hand-made inputs."""
import json
import logging
import math

import pytest

from depthnas.rank_correlation import (kendall_tau, ranking_report, sparse_kendall_tau,
                                       spearman_rho, top_percentile)


def test_identical_and_reversed_orders():
    truth = [0.1, 0.2, 0.3, 0.4, 0.5]
    assert kendall_tau(truth, [1, 2, 3, 4, 5]) == pytest.approx(1.0)
    assert kendall_tau(truth, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman_rho(truth, [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    assert spearman_rho(truth, [50, 40, 30, 20, 10]) == pytest.approx(-1.0)


def test_spearman_rho_by_hand():
    # rank differences 0, 1, 1, 1, 1: 1 - 6 * 4 / (5 * 24) = 0.8 (Pearson of the raw
    # values, or Kendall's tau (0.6), would give another number)
    assert spearman_rho([1, 2, 3, 4, 5], [1, 3, 2, 5, 4]) == pytest.approx(0.8)
    # ranks 1, 4, 2, 5, 3: differences 0, 2, 1, 1, 2, so 1 - 6 * 10 / 120
    assert spearman_rho([1, 2, 3, 4, 5], [1, 30, 2, 500, 4]) == pytest.approx(0.5)


def test_kendall_tau_by_hand():
    # pairs: (1,2)+ (1,3)+ (1,4)+ (2,3)- (2,4)+ (3,4)+ -> (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # the truth in no order of its own: the pairs are those of the two lists together
    # (truth 0.3, 0.1, 0.4, 0.2 against 2, 3, 4, 1: 4 concordant, 2 discordant; the
    # truth sorted first would give 3 and 3)
    assert kendall_tau([0.3, 0.1, 0.4, 0.2], [2, 3, 4, 1]) == pytest.approx(1 / 3)
    assert kendall_tau([0.3, 0.1, 0.4, 0.2], [3, 1, 4, 2]) == pytest.approx(1.0)


def test_kendall_tau_is_tau_b_with_ties():
    """Tied losses (two architectures trained to one value) count as neither
    concordant nor discordant, and tau-b's denominator corrects for them:
    5 / sqrt(5 * 6), where tau-a would give 5/6 and tau-c 0.9375."""
    assert kendall_tau([0.1, 0.1, 0.2, 0.3], [1, 2, 3, 4]) == pytest.approx(5 / 30 ** 0.5)  # 0.913


def test_sparse_kendall_tau_treats_close_truth_values_as_ties():
    truth = [0.100, 0.101, 0.200, 0.201]
    predicted = [2, 1, 4, 3]  # swaps only within noise-level pairs
    # 4 concordant, 2 discordant pairs
    assert kendall_tau(truth, predicted) == pytest.approx((4 - 2) / 6)
    # bins of width 0.01: {0.100, 0.101} and {0.200, 0.201}: the two swapped pairs
    # become ties in the truth, so no pair is discordant; tau-b = 4 / sqrt((6-2) * 6)
    assert sparse_kendall_tau(truth, predicted, threshold=0.01) == pytest.approx(4 / 24 ** 0.5)
    # floor, not round: 0.104 and 0.106 share the bin [0.10, 0.11) although 0.106 is
    # nearer 0.11; one tie in the truth leaves tau-b = 2 / sqrt(2 * 3)
    assert sparse_kendall_tau([0.104, 0.106, 0.3], [2, 1, 3], 0.01) == pytest.approx(2 / 6 ** 0.5)
    # bins from 0, not from the smallest value: 0.105 and 0.112 lie in [0.10, 0.11)
    # and [0.11, 0.12), no tie (bins counted from 0.105 would put both in one)
    assert sparse_kendall_tau([0.105, 0.112, 0.2], [2, 1, 3], 0.01) == pytest.approx(1 / 3)
    for bad in (0, float("nan"), None):  # None failed in math.isfinite, unnamed
        with pytest.raises(ValueError, match="threshold must be a finite number > 0"):
            sparse_kendall_tau(truth, predicted, bad)


def test_top_percentile_of_the_best_predicted():
    truth = [0.5, 0.1, 0.3, 0.2]
    assert top_percentile(truth, [9, 1, 5, 6]) == 25.0   # predicted best is the true best
    assert top_percentile(truth, [1, 9, 5, 6]) == 100.0  # predicted best is the true worst
    # a tie for the best score is an even chance, whatever the input order
    assert top_percentile(truth, [1, 1, 5, 6]) == top_percentile(truth[::-1], [1, 1, 5, 6][::-1]) == 62.5
    assert top_percentile(truth, [3, 3, 3, 3]) == 62.5  # a constant super-net: the mean rank


def test_a_side_without_order_gives_no_correlation_and_no_warning():
    """A collapsed super-net scores every path alike: tau is undefined (NaN), said by
    the number, not by scipy's ConstantInputWarning with its source path."""
    import math
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = ranking_report([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
        assert math.isnan(r["kendall_tau"]) and math.isnan(r["spearman_rho"])
        assert math.isnan(r["sparse_kendall_tau"])
        # every truth value in one bin: the sparse tau has no order to meet either
        assert math.isnan(sparse_kendall_tau([0.100, 0.101, 0.102], [1, 2, 3], threshold=0.01))
        # the truth's side alike (a coarse table's ties): NaN too, not a threshold of 0
        r = ranking_report([0.2, 0.2, 0.2], [1, 2, 3])
        assert math.isnan(r["kendall_tau"]) and math.isnan(r["sparse_kendall_tau"])
    assert kendall_tau([0.1, 0.2, 0.3], [1, 2, 3]) == pytest.approx(1.0)


def test_report_states_its_threshold():
    r = ranking_report([1.0, 2.0, 3.0], [1.0, 3.0, 2.0], threshold=0.5)
    assert r["sparse_threshold"] == 0.5 and r["n"] == 3
    assert r["kendall_tau"] == pytest.approx(1 / 3)


def test_default_threshold_is_one_percent_of_the_truth_range():
    """Without a threshold, truth values closer than 1% of their range tie: here
    0.1 and 0.1005 (range 0.3, bin width 0.003) share a bin, so swapping them
    costs the sparse tau nothing while the plain tau drops."""
    truth, predicted = [0.1, 0.1005, 0.25, 0.4], [2.0, 1.0, 3.0, 4.0]
    r = ranking_report(truth, predicted)
    assert r["sparse_threshold"] == pytest.approx(0.003)
    assert r["sparse_kendall_tau"] == pytest.approx(5 / (5 * 6) ** 0.5)  # tau-b, one tie in truth
    assert r["kendall_tau"] == pytest.approx(4 / 6)


def test_needs_two_equal_length_lists():
    with pytest.raises(ValueError, match="at least two"):
        kendall_tau([1.0], [1.0])
    with pytest.raises(ValueError, match="equal-length"):
        kendall_tau([1.0, 2.0], [1.0, 2.0, 3.0])


def refused(path, text: str, match: str) -> None:
    """A truth table with this text is refused with an error matching `match`."""
    from depthnas.truth import load_truth
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_truth(path)


def test_truth_tables_hold_finite_losses(tmp_path, caplog):
    from depthnas.truth import load_truth
    refused(tmp_path / "bad.json", '{"v1-sync:c3,c3,c3,c3,c3": NaN, "v1-sync:c1,c1,c1,c1,c1": 0.3}',
            r"'v1-sync:c3,c3,c3,c3,c3' has loss nan")
    # a benchmark table marks an architecture whose every seed diverged with a null mean
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"architectures": {"a": {"mean": None, "seeds": [None, None]},
                                                   "b": {"mean": 0.2, "seeds": [0.2, 0.2]}}}))
    assert load_truth(table) == {"b": 0.2}
    # so may a run's results.json hold one (NaN is written as null); said, and left out
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"architectures": [{"arch": "a", "val_loss": None},
                                                     {"arch": "b", "val_loss": 0.2}]}))
    with caplog.at_level("WARNING", logger="depthnas.truth"):
        assert load_truth(results) == {"b": 0.2}
    assert "results.json: 1 entry without a loss (null: the training diverged) left out: a" in caplog.text
    # in a table of one's own a null is no loss: its row was left out without a word
    for text in ('{"a": {"val_loss": null}, "b": 0.2}', '[{"arch": "a", "val_loss": null}]'):
        refused(tmp_path / "null.json", text, "null.json: entry 'a' has loss None; expected a number")


def test_truth_table_mistakes_are_explained(tmp_path):
    refused(tmp_path / "t.csv", "arch,loss\nv1-sync:c3,skip,none,c1,ap,0.2\n",
            r"t.csv line 2: .*quote architecture strings")
    refused(tmp_path / "t.json", '[{"architecture": "v1-sync:c3,skip,none,c1,ap", "loss": 0.1}]',
            "needs objects with an 'arch' key")
    for bad, shown in (({"a": {"mean": "x"}}, "'x'"), ({"a": True, "b": 0.2}, "True")):
        refused(tmp_path / "t.json", json.dumps(bad), f"t.json: entry 'a' has loss {shown}; expected a number")
    refused(tmp_path / "twice.csv",
            'arch,loss\n"v1-sync:c3,skip,none,c1,ap",0.2\n"v1-sync:c3,skip,none,c1,ap",0.3\n',
            "twice.csv line 3: .* is listed a second time")
    refused(tmp_path / "twice.json", json.dumps([{"arch": "a", "loss": 0.5}, {"arch": "a", "loss": 0.1}]),
            "twice.json: entry 1: 'a' is listed a second time")
    # the line a mistake is on, past blank lines (the row count named line 3 here)
    refused(tmp_path / "gaps.csv", 'arch,val_loss\n\n\n\n"v1-sync:c3,c3,none,c1,ap",0.1\n\n'
            '"v1-sync:c3,c3,c1,c3,c1",abc\n', "gaps.csv line 7: could not convert")
    with pytest.raises(ValueError, match=f"truth table {tmp_path} is a folder; name its JSON or CSV file"):
        from depthnas.truth import load_truth
        load_truth(tmp_path)


NB201_ARCH = "|skip_connect~0|+|avg_pool_3x3~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"
NB201_SWAPPED = "|skip_connect~0|+|none~1|avg_pool_3x3~0|+|nor_conv_3x3~2|none~1|nor_conv_1x1~0|"
NB201_OTHER = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_a_table_row_counts_under_its_space_s_canonical_spelling():
    """A truth table may write an NB201 cell's tokens in another order; lookups by the
    search (canonical strings) used to miss such rows and retrain the architecture."""
    from depthnas.spaces import get_space
    from depthnas.truth import for_space
    nb201 = get_space("nb201")
    table = for_space({NB201_SWAPPED: 0.2, "v1-sync:c3,skip,none,c1,ap": 0.1, "junk": 0.3}, nb201, "t.json")
    assert table.values == {NB201_ARCH: 0.2} and table.foreign == 1 and len(table.invalid) == 1
    assert for_space({NB201_ARCH: 0.2, NB201_SWAPPED: 0.2}, nb201, "t.json").values == {NB201_ARCH: 0.2}
    with pytest.raises(ValueError, match="are the same nb201 architecture with losses 0.2 and 0.9"):
        for_space({NB201_ARCH: 0.2, NB201_SWAPPED: 0.9}, nb201, "t.json")
    # one loss written twice, in arithmetic's last bits (1 - 0.91 beside 0.09): the same
    assert for_space({NB201_ARCH: 1 - 0.91, NB201_SWAPPED: 0.09}, nb201, "t.json").values == {NB201_ARCH: pytest.approx(0.09)}
    # losses apart below six digits read in full, not as "0.123456 and 0.123456"
    with pytest.raises(ValueError, match="with losses 0.1234561 and 0.1234564"):
        for_space({NB201_ARCH: 0.1234561, NB201_SWAPPED: 0.1234564}, nb201, "t.json")


def test_percent_accuracies_without_the_accuracy_key_are_refused_for_classification():
    from depthnas.spaces import get_space
    from depthnas.truth import for_space
    with pytest.raises(ValueError, match=r"t.json: 1 nb201 entry above 1 .* put accuracies in percent under 'accuracy'"):
        for_space({NB201_ARCH: 78.8}, get_space("nb201"), "t.json")


def test_a_classification_table_of_error_rates_all_above_one_half_is_warned_of(caplog):
    """Accuracies as fractions (0.87, 0.93) read as error rates rank upside down; it
    passed without a word."""
    from depthnas.spaces import get_space
    from depthnas.truth import for_space
    with caplog.at_level(logging.WARNING, logger="depthnas.truth"):
        for_space({NB201_ARCH: 0.87, NB201_OTHER: 0.93}, get_space("nb201"), "t.json")
    assert ("t.json: every nb201 entry is an error rate above 0.5 (the lowest 0.87); if these are "
            "accuracies, give 1 - accuracy") in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="depthnas.truth"):
        for_space({NB201_ARCH: 0.13, NB201_OTHER: 0.93}, get_space("nb201"), "t.json")
    assert "above 0.5" not in caplog.text


def test_error_rates_depthnas_wrote_are_not_taken_for_accuracies(tmp_path, caplog):
    """A short nb201 run's own results.json (error rates above 0.5: it had barely
    trained) was warned of as if it held accuracy fractions."""
    from depthnas.spaces import get_space
    from depthnas.truth import for_space, read_table
    for layout in ({"architectures": [{"arch": NB201_ARCH, "val_loss": 0.8, "role": "landmark"},
                                      {"arch": NB201_OTHER, "val_loss": 0.7, "role": "rank"}]},
                   {"entries": [{"arch": NB201_ARCH, "space": "nb201", "val_loss": 0.8},
                                {"arch": NB201_OTHER, "space": "nb201", "val_loss": 0.7}]}):
        path = tmp_path / "t.json"
        path.write_text(json.dumps(layout))
        read = read_table(path)
        with caplog.at_level(logging.WARNING, logger="depthnas.truth"):
            for_space(read.values, get_space("nb201"), path, known_losses=read.known_losses)
        assert read.known_losses and "above 0.5" not in caplog.text
    path.write_text(json.dumps({NB201_ARCH: 0.8, NB201_OTHER: 0.7}))  # a table of anyone's
    assert not read_table(path).known_losses


def test_one_training_s_result_is_not_read_as_a_table(tmp_path):
    """`--arch` takes a training's result.json, so users give it as --truth too: its keys
    (arch, space, val_loss, ...) were read as architectures, and 'arch' named as an
    entry whose loss is no number."""
    from depthnas.truth import read_table
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"arch": NB201_ARCH, "space": "nb201", "val_loss": 0.1, "params": 10}))
    with pytest.raises(ValueError, match=r"result.json is one training's result .*not a table of "
                                         r"architectures and their losses"):
        read_table(path)


def test_accuracies_in_percent_as_asked_are_not_warned_of_however_low(tmp_path, caplog):
    """ImageNet16-120's best accuracies are about 47%: its error rates all lie above 0.5,
    and a table `nasbench` wrote of them was warned of as if fractions."""
    from depthnas.spaces import get_space
    from depthnas.truth import for_space, read_table
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"architectures": {NB201_ARCH: {"accuracy": 38.2},
                                                  NB201_OTHER: {"accuracy": 46.9}}}))
    read = read_table(path)
    assert read.known_losses
    with caplog.at_level(logging.WARNING, logger="depthnas.truth"):
        table = for_space(read.values, get_space("nb201"), path, known_losses=read.known_losses)
    assert table.values[NB201_OTHER] == pytest.approx(0.531) and "above 0.5" not in caplog.text


def test_sparse_kendall_tau_bins_values_on_a_bin_edge_where_they_belong():
    """floor(0.3 / 0.1) is 2 in floating point: 0.3 shared 0.2's bin, and 93% and 94%
    accuracy (error 0.07 and 0.06) one bin at threshold 0.01."""
    assert sparse_kendall_tau([0.2, 0.3], [1.0, 2.0], 0.1) == pytest.approx(1.0)
    errors = [1 - a / 100 for a in range(90, 98)]  # eight evenly spaced accuracies
    assert sparse_kendall_tau(errors, errors, 0.01) == pytest.approx(1.0)
    # the rounding mends float error only: 0.29996 is below 0.3's edge, in 0.2's bin
    assert sparse_kendall_tau([0.29996, 0.2001, 0.41, 0.5], [1, 2, 3, 4], 0.1) == \
        pytest.approx(kendall_tau([2, 2, 4, 5], [1, 2, 3, 4]))


def test_a_diverged_path_is_left_out_of_every_metric_not_spread_into_all_of_them():
    report = ranking_report([1.0, 2.0, 3.0, 4.0], [1.0, float("nan"), 3.0, 4.0])
    assert report["n"] == 3 and report["non_finite"] == 1
    assert report["kendall_tau"] == pytest.approx(1.0) and report["top_percentile"] == pytest.approx(100 / 3)
    clean = ranking_report([1.0, 2.0, 3.0], [1.0, 3.0, 4.0])
    assert "non_finite" not in clean
    # nothing finite left: numbers say so, no exception at the end of a finished search
    empty = ranking_report([1.0, 2.0], [float("nan"), float("inf")])
    assert empty["n"] == 0 and empty["kendall_tau"] != empty["kendall_tau"]


def test_hand_written_truth_tables_read_as_their_author_meant(tmp_path):
    from depthnas.truth import load_truth
    # Excel's "CSV UTF-8" adds a byte-order mark; people put spaces after commas
    bom = tmp_path / "excel.csv"
    bom.write_bytes("\ufeffarch, val_loss\nv1-sync:c3,0.1\n".replace("v1-sync:c3", '"v1-sync:c3"')
                    .encode("utf-8"))
    assert load_truth(bom) == {"v1-sync:c3": 0.1}
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("architecture,val_loss\nx,0.1\n")
    with pytest.raises(ValueError, match=r"'arch' column \(its header: architecture, val_loss\)"):
        load_truth(wrong)
    # a column named as the author would: said of the header, not of the first row
    wrong.write_text("arch,acc\nx,91.2\n")
    with pytest.raises(ValueError, match=r"the CSV header has no loss or accuracy column \(its "
                                         r"header: arch, acc\); name one mean, val_loss, loss, score, or accuracy"):
        load_truth(wrong)
    # a JSON object keeps the last of two equal keys silently; the list and CSV forms refuse
    twice = tmp_path / "twice.json"
    twice.write_text('{"v1-sync:c3,c3,c3,c3,c3": 0.1, "v1-sync:c3,c3,c3,c3,c3": 0.9}')
    with pytest.raises(ValueError, match=r"twice.json: key 'v1-sync:c3,c3,c3,c3,c3' is listed a second time"):
        load_truth(twice)


def test_a_given_threshold_wins_over_the_run_s_and_the_table_s():
    """--threshold is the user's explicit choice: it beats search.sparse_threshold (which
    every benchmarks/ranking.py run records) and the table's seed noise."""
    from depthnas.rank_plan import sparse_threshold
    assert sparse_threshold(0.05, 0.01, 0.002) == (0.05, "given (--threshold)")


def test_a_loss_of_zero_is_not_called_below_zero(caplog):
    """An error rate of 0 (100% accuracy) is a loss; only negative ones are warned of."""
    from depthnas.rank_plan import _check_order
    with caplog.at_level(logging.WARNING, logger="depthnas.rank"):
        _check_order([0.0, 0.1, 0.2], "t.json")
    assert "below 0" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="depthnas.rank"):
        _check_order([-0.1, 0.1, 0.2], "t.json")
    assert "t.json: 1 loss(es) below 0 (lowest -0.1)" in caplog.text


def test_accuracies_are_percent_in_0_to_100_both_ends_included(tmp_path):
    """0% is an accuracy (a diverged training): the error says [0, 100], so 0 is read."""
    from depthnas.truth import load_truth
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"architectures": {"a": {"accuracy": 0.0}, "b": {"accuracy": 100.0}}}))
    assert load_truth(path) == {"a": 1.0, "b": 0.0}


def test_only_a_table_whose_every_accuracy_is_at_most_1_looks_like_fractions(tmp_path):
    """One architecture below 1% (a diverged training) among 90% ones is percent."""
    from depthnas.truth import load_truth
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"architectures": {"a": {"accuracy": 0.5}, "b": {"accuracy": 93.0}}}))
    assert load_truth(path) == pytest.approx({"a": 0.995, "b": 0.07})
    refused(path, json.dumps({"architectures": {"a": {"accuracy": 0.5}, "b": {"accuracy": 0.93}}}),
            "every accuracy is <= 1, which looks like fractions")


def test_a_csv_with_a_loss_and_an_accuracy_column_may_leave_either_cell_empty(tmp_path):
    from depthnas.truth import load_truth
    path = tmp_path / "t.csv"
    path.write_text('arch,val_loss,accuracy\n"v1-sync:c3",0.2,\n"v1-sync:c1",,93.0\n')
    assert load_truth(path) == pytest.approx({"v1-sync:c3": 0.2, "v1-sync:c1": 0.07})


def test_a_list_table_with_one_entry_lacking_its_arch_is_explained_not_a_key_error(tmp_path):
    refused(tmp_path / "t.json", json.dumps([{"arch": "a", "loss": 0.1}, {"architecture": "b", "loss": 0.2}]),
            "t.json: entry 1: a list table needs objects with an 'arch' key")


def test_a_benchmark_table_s_nested_image_size_and_seed_noise_are_read(tmp_path):
    """build_table.py nests the data settings under recipe.data; a seed noise of 0 (two
    seeds that agree) is no bin width: 0 made `rank` fail after scoring every path."""
    from depthnas.truth import read_table
    path = tmp_path / "table.json"
    path.write_text(json.dumps({
        "config": {"recipe": {"backbone": "b", "features": 16, "first_block_input": "duplicate",
                              "data": {"spec": "synthetic", "image_size": [64, 64], "synthetic_samples": 1024,
                                       "seed": 0, "val_fraction": 0.15, "reg_fraction": 0.15}}},
        "seed_median_abs_diff": {"v1-sync": 0.0, "v2-sync": 0.003},
        "architectures": {"v1-sync:c3,c3,c3,c3,c3": {"mean": 0.2}}}))
    table = read_table(path)
    assert table.setup == {"model.backbone": "b", "model.features": 16, "data.image_size": [64, 64],
                           "data.spec": "synthetic", "data.synthetic_samples": 1024, "seed": 0,
                           "data.val_fraction": 0.15, "data.reg_fraction": 0.15,
                           "model.first_block_input": "duplicate"}
    assert table.seed_noise == {"v2-sync": 0.003}


def test_a_table_s_data_seed_and_split_fractions_are_compared_with_the_run_s(tmp_path):
    """They choose the scenes and which of them validate: a run of another seed ranked
    against losses measured on other images without a word."""
    from depthnas import config as config_mod
    from depthnas.truth import other_setup, read_table
    cfg = config_mod.Config()
    cfg.model.backbone, cfg.model.features = "b", 16
    data = {"spec": cfg.data.spec, "seed": cfg.seed, "val_fraction": cfg.data.val_fraction,
            "reg_fraction": cfg.data.reg_fraction}
    path = tmp_path / "table.json"
    path.write_text(json.dumps({
        "config": {"recipe": {"backbone": "b", "features": 16, "data": data,
                              "first_block_input": cfg.model.first_block_input}},
        "architectures": {"v1-sync:c3,c3,c3,c3,c3": {"mean": 0.2}}}))
    setup = read_table(path).setup
    assert other_setup(setup, cfg) == {}
    cfg.seed, cfg.data.val_fraction, cfg.model.first_block_input = 5, 0.3, "zeros"
    assert set(other_setup(setup, cfg)) == {"seed", "data.val_fraction", "model.first_block_input"}


def test_the_predicted_best_tied_for_the_true_best_is_the_best():  # R6b
    """Ranks by ground truth are 'min' ranks: an architecture tied for the best loss
    is the best (100/n), not half a place behind."""
    assert top_percentile([0.1, 0.1, 0.3, 0.4], [1, 2, 3, 4]) == 25.0


def test_one_finite_pair_left_reports_nan_not_an_exception():  # R8
    report = ranking_report([1.0, 2.0, 3.0], [1.0, float("nan"), float("inf")])
    assert report["n"] == 1 and report["non_finite"] == 2
    assert all(math.isnan(report[k]) for k in ("kendall_tau", "sparse_kendall_tau",
                                               "spearman_rho", "top_percentile"))
    two = ranking_report([1.0, 2.0, 3.0], [1.0, 2.0, float("nan")])  # two pairs: ranked
    assert two["n"] == 2 and two["kendall_tau"] == pytest.approx(1.0)


def test_the_default_threshold_is_of_the_pairs_that_are_ranked():  # R11
    """A diverged path is left out of every metric, its threshold too: 1% of the
    finite truth's range (3 - 1), not of a range its infinite loss made infinite."""
    report = ranking_report([1.0, 2.0, 3.0, float("inf")], [1.0, 2.0, 3.0, 4.0])
    assert report["n"] == 3 and report["sparse_threshold"] == pytest.approx(0.02)
    assert report["sparse_kendall_tau"] == pytest.approx(1.0)
    far = ranking_report([1.0, 2.0, 3.0, 100.0], [1.0, 2.0, 3.0, float("nan")])
    assert far["sparse_threshold"] == pytest.approx(0.02)


def test_an_unfinished_search_still_leaves_its_drawn_landmarks_out_of_the_ranking(tmp_path, caplog):
    """A search stopped before results.json: its initial landmarks trained the
    super-net with the ranking penalty, so `rank` must leave them out (as the search's
    own report does), or its Kendall tau counts the very paths the penalty ordered."""
    from depthnas.rank_plan import run_left_out
    drawn = ["v1-sync:c3,c3,c3,c3,c3", "v1-sync:c1,c1,c1,c1,c1"]
    (tmp_path / "initial_landmarks.json").write_text(json.dumps(drawn))
    with caplog.at_level(logging.WARNING, logger="depthnas.rank"):
        assert run_left_out(tmp_path) == (set(drawn), set())
    assert "has no results.json (the search has not finished)" in caplog.text
    (tmp_path / "initial_landmarks.json").unlink()  # stopped before the draw: nothing to leave out
    assert run_left_out(tmp_path) == (set(), set())


def test_rank_takes_a_run_s_results_json_of_high_error_rates_as_losses(tmp_path, caplog):
    """`rank --truth` another nb201 run's results.json (error rates above 0.5: a short
    run) warned that they looked like accuracy fractions: plan_rank must hand the
    table's known_losses on to for_space, as the search does."""
    from depthnas import config as config_mod
    from depthnas.rank_plan import plan_rank
    run = tmp_path / "run"
    run.mkdir()
    cfg = config_mod.Config(space="nb201")
    cfg.data.spec = "digits"
    config_mod.dump(cfg, run / "config.yaml")
    other = tmp_path / "results.json"
    other.write_text(json.dumps({"architectures": [
        {"arch": NB201_ARCH, "val_loss": 0.8, "role": "landmark", "landmark": False},
        {"arch": NB201_OTHER, "val_loss": 0.7, "role": "rank", "landmark": False}]}))
    with caplog.at_level(logging.WARNING):
        plan = plan_rank(run, other)
    assert plan.values == [0.8, 0.7]
    assert "above 0.5" not in caplog.text


def test_a_csv_table_s_losses_are_not_taken_as_known_error_rates(tmp_path, caplog):
    """Only a record depthnas wrote (results.json, a landmark store) or accuracies in
    percent are known losses: a CSV of anyone's, every value above 0.5, may be accuracy
    fractions in a val_loss column, which rank upside down; it must still be warned of."""
    from depthnas.spaces import get_space
    from depthnas.truth import for_space, read_table
    path = tmp_path / "t.csv"
    path.write_text(f'arch,val_loss\n"{NB201_ARCH}",0.87\n"{NB201_OTHER}",0.93\n')
    read = read_table(path)
    assert not read.known_losses
    with caplog.at_level(logging.WARNING, logger="depthnas.truth"):
        for_space(read.values, get_space("nb201"), path, known_losses=read.known_losses)
    assert "every nb201 entry is an error rate above 0.5" in caplog.text


def test_rank_bins_by_the_table_s_seed_noise_when_the_run_records_no_threshold(tmp_path):
    """A benchmark table's seed noise is the bin width `rank` uses when neither
    --threshold nor the run's search.sparse_threshold gives one: plan_rank must hand
    it to sparse_threshold, not fall through to 1% of the range."""
    from depthnas import config as config_mod
    from depthnas.rank_plan import plan_rank
    run = tmp_path / "run"
    run.mkdir()
    cfg = config_mod.Config(space="v1-sync")
    assert cfg.search.sparse_threshold is None
    config_mod.dump(cfg, run / "config.yaml")
    table = tmp_path / "table.json"
    table.write_text(json.dumps({
        "seed_median_abs_diff": {"v1-sync": 0.003, "v2-sync": 0.5},
        "architectures": {"v1-sync:c3,c3,c3,c3,c3": {"mean": 0.2},
                          "v1-sync:c1,c1,c1,c1,c1": {"mean": 0.3}}}))
    plan = plan_rank(run, table)
    assert (plan.threshold, plan.threshold_rule) == (0.003, "the table's median |seed 0 - seed 1|")


def test_rank_calls_a_folder_without_config_yaml_no_search_run(tmp_path):
    """A mistyped --run (an empty or unrelated folder) is named as no search run."""
    from depthnas.rank_plan import plan_rank
    truth = tmp_path / "t.json"
    truth.write_text(json.dumps({"v1-sync:c3,c3,c3,c3,c3": 0.1, "v1-sync:c1,c1,c1,c1,c1": 0.2}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty is not a search run \(no config.yaml\)"):
        plan_rank(tmp_path / "empty", truth)
    # no folder at all: said so, not sent looking for a config.yaml in it
    with pytest.raises(FileNotFoundError, match=r"--run .*nope: no such folder"):
        plan_rank(tmp_path / "nope", truth)


# T2
def test_an_infinite_loss_is_refused_as_a_nan_is(tmp_path):
    """Infinity (JSON's, or 'inf' in a CSV cell) is no loss either: it would rank as
    the worst architecture of all without a word."""
    refused(tmp_path / "t.json", '{"v1-sync:c3,c3,c3,c3,c3": Infinity, "v1-sync:c1,c1,c1,c1,c1": 0.3}',
            r"'v1-sync:c3,c3,c3,c3,c3' has loss inf; a table holds finite losses")
    refused(tmp_path / "t.csv", 'arch,val_loss\n"v1-sync:c3",0.2\n"v1-sync:c1",-inf\n',
            r"'v1-sync:c1' has loss -inf; a table holds finite losses")


# T8
def test_accuracy_fractions_that_include_a_perfect_1_are_still_fractions(tmp_path):
    """1.0 is 100% as a fraction: a table of 0.93 and 1.0 is fractions, not 0.93% and 1%."""
    refused(tmp_path / "t.json",
            json.dumps({"architectures": {"a": {"accuracy": 0.93}, "b": {"accuracy": 1.0}}}),
            "every accuracy is <= 1, which looks like fractions")


# T9
def test_a_csv_with_a_header_and_no_rows_is_refused(tmp_path):
    refused(tmp_path / "t.csv", "arch,val_loss\n", "t.csv: the CSV has a header and no rows")


# T20
def test_an_accuracy_of_0_percent_reaches_a_classification_space_as_error_rate_1(tmp_path):
    """0% (a diverged training) is an accuracy the table takes; its error rate, 1.0, is
    in [0, 1] and must not be refused as 'above 1' like a percent without the key."""
    from depthnas.spaces import get_space
    from depthnas.truth import for_space, read_table
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"architectures": {NB201_ARCH: {"accuracy": 0.0},
                                                  NB201_OTHER: {"accuracy": 93.0}}}))
    read = read_table(path)
    table = for_space(read.values, get_space("nb201"), path, known_losses=read.known_losses)
    assert table.values == pytest.approx({NB201_ARCH: 1.0, NB201_OTHER: 0.07})


# T21
def test_a_single_high_error_rate_is_not_taken_for_accuracy_fractions(caplog):
    """One entry says nothing about the table's unit: the warning needs two or more."""
    from depthnas.spaces import get_space
    from depthnas.truth import for_space
    with caplog.at_level(logging.WARNING, logger="depthnas.truth"):
        for_space({NB201_ARCH: 0.9}, get_space("nb201"), "t.json")
    assert "above 0.5" not in caplog.text
