"""SPOS evolutionary search and random search on a known fitness landscape."""
import hashlib
import json
import random

import pytest

from depthnas.config import SearchConfig
from depthnas.evolution import evolutionary_search, new_models, random_search
from depthnas.spaces import get_space

SPACE = get_space("v1-sync")
# every edge runs: no other string builds this model (see function_key)
TARGET = SPACE.from_string("v1-sync:c3,skip,ap,c1,c3")


def distance(a):
    return float(SPACE.hamming(a, TARGET))


def test_evolution_finds_the_optimum_and_never_scores_one_model_twice():
    seen = []

    def score(a):
        seen.append(a)
        return distance(a)

    ranked = evolutionary_search(SPACE, score, SearchConfig(), random.Random(0), progress=False)
    assert ranked[0] == (TARGET, 0.0)
    assert len(seen) == len(set(seen))            # duplicates rejected
    # ... and strings that build a scored model: 22% of v1-sync's 3,125 strings do
    assert len({SPACE.function_key(a) for a in seen}) == len(seen)
    assert len(seen) == 20 * 50                   # 50 new candidates in each of 20 generations


def test_each_generation_makes_as_many_mutants_and_crossovers_as_configured(monkeypatch):
    """mutations and crossovers are two counts (SPOS: 25 and 25); equal by default, so a
    loop over the wrong one would pass every search above."""
    space = get_space("v1-nonsync")  # 9.5e13 architectures: no duplicate to draw again
    fresh, calls = iter(range(1, 10**6)), {"mutate": 0, "crossover": 0}

    def mutate(self, arch, rng, prob=None):
        calls["mutate"] += 1
        return self.sample(random.Random(next(fresh)))

    def crossover(self, a, b, rng):
        calls["crossover"] += 1
        return self.sample(random.Random(-next(fresh)))
    monkeypatch.setattr(type(space), "mutate", mutate)
    monkeypatch.setattr(type(space), "crossover", crossover)
    cfg = SearchConfig(population=12, generations=3, parents=4, mutations=5, crossovers=2)
    evolutionary_search(space, lambda a: float(hash(a) % 1000), cfg, random.Random(0), progress=False)
    assert calls == {"mutate": 2 * 5, "crossover": 2 * 2}  # generations 2 and 3; 1 is random


def test_mutants_resample_genes_with_the_configured_probability(monkeypatch):
    """SPOS evolution: each gene of a mutant is resampled with probability 0.1
    (mutation_prob), not the landmark sampler's one-gene change."""
    probs = []
    mutate = type(SPACE).mutate

    def spy(self, arch, rng, prob=None):
        probs.append(prob)
        return mutate(self, arch, rng, prob)
    monkeypatch.setattr(type(SPACE), "mutate", spy)
    cfg = SearchConfig(population=12, generations=3, parents=4, mutations=4, crossovers=4)
    assert cfg.mutation_prob == 0.1
    evolutionary_search(SPACE, distance, cfg, random.Random(0), progress=False)
    assert len(probs) >= 2 * 4 and set(probs) == {0.1}
    probs.clear()
    evolutionary_search(SPACE, distance, SearchConfig(**{**cfg.__dict__, "mutation_prob": 0.3}),
                        random.Random(0), progress=False)
    assert probs and set(probs) == {0.3}


def test_every_generation_scores_a_full_population_under_a_tight_budget():
    """A budget admitting ~8% of the space must not cut generations short: mutants
    and crossovers that break it are replaced by random samples that keep it."""
    draws = [SPACE.sample(random.Random(i)) for i in range(3000)]
    share = sum(SPACE.to_string(a).count("none") >= 3 for a in draws) / len(draws)
    assert 0.04 < share < 0.08  # 5.8% of the space has 3 or more `none` edges
    seen = set()

    def score(a):
        seen.add(a)
        return distance(a)
    cfg = SearchConfig(population=12, generations=4, parents=4, mutations=4, crossovers=4)
    evolutionary_search(SPACE, score, cfg, random.Random(3), progress=False,
                        constraint=lambda a: SPACE.to_string(a).count("none") >= 3)
    assert len(seen) == 4 * 12


def test_constraint_is_respected():
    def no_conv3(a):
        return "c3" not in SPACE.to_string(a)
    cfg = SearchConfig(population=20, generations=5)
    ranked = evolutionary_search(SPACE, distance, cfg, random.Random(1), constraint=no_conv3,
                                 progress=False)
    assert all(no_conv3(a) for a, _ in ranked)


@pytest.mark.parametrize("search", [evolutionary_search, random_search])
def test_a_constraint_no_architecture_meets_is_a_clear_error(search):
    cfg = SearchConfig(population=10, generations=2, random_candidates=10)
    with pytest.raises(ValueError, match=r"no v1-sync architecture to score: the search "
                                         r"constraint rejected all \d+ candidates.*max_params"):
        search(SPACE, distance, cfg, random.Random(0), constraint=lambda a: False, progress=False)


def test_checkpoint_resume_gives_the_uninterrupted_result(tmp_path):
    cfg = SearchConfig(population=16, generations=6, parents=4, mutations=6, crossovers=6)
    full = evolutionary_search(SPACE, distance, cfg, random.Random(2), progress=False)
    ckpt = tmp_path / "search.json"
    half = SearchConfig(**{**cfg.__dict__, "generations": 3})
    evolutionary_search(SPACE, distance, half, random.Random(2), checkpoint=ckpt, progress=False)
    resumed = evolutionary_search(SPACE, distance, cfg, random.Random(2), checkpoint=ckpt,
                                  progress=False)
    assert resumed == full


def test_a_checkpoint_of_another_search_is_refused(tmp_path):
    """A resumed search starts from its own generator (the run's seed, the iteration):
    its checkpoint's state is restored, so a fresh generator of the same seed resumes
    it (above). One of another seed, copied in, went on as if it were this one."""
    cfg = SearchConfig(population=16, generations=6, parents=4, mutations=6, crossovers=6)
    ckpt = tmp_path / "search.json"
    half = SearchConfig(**{**cfg.__dict__, "generations": 3})
    evolutionary_search(SPACE, distance, half, random.Random(2), checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match=r"search.json was saved by another search \(another seed"):
        evolutionary_search(SPACE, distance, cfg, random.Random(7), checkpoint=ckpt, progress=False)


def test_an_interrupted_search_keeps_every_finished_generation(tmp_path):
    """Ctrl-C in generation 4 of 6 loses that generation only: the checkpoint holds
    generations 1-3, and the resumed search ends where an uninterrupted one does."""
    cfg = SearchConfig(population=16, generations=6, parents=4, mutations=6, crossovers=6)
    full = evolutionary_search(SPACE, distance, cfg, random.Random(2), progress=False)
    ckpt = tmp_path / "search.json"
    scored = []

    def interrupted(a):
        if len(scored) == 3 * 16 + 5:
            raise KeyboardInterrupt
        scored.append(a)
        return distance(a)
    with pytest.raises(KeyboardInterrupt):
        evolutionary_search(SPACE, interrupted, cfg, random.Random(2), checkpoint=ckpt,
                            progress=False)
    saved = json.loads(ckpt.read_text())
    assert saved["generation"] == 3 and len(saved["scores"]) == 3 * 16
    resumed = evolutionary_search(SPACE, distance, cfg, random.Random(2), checkpoint=ckpt,
                                  progress=False)
    assert resumed == full


def test_an_interrupted_random_search_keeps_its_scores_ten_at_a_time(tmp_path):
    """Ctrl-C at the 15th architecture loses 5 scores, not 14; the resumed search ends
    where an uninterrupted one does."""
    cfg = SearchConfig(random_candidates=30)
    full = random_search(SPACE, distance, cfg, random.Random(3), progress=False)
    ckpt = tmp_path / "search.json"
    scored = []

    def interrupted(a):
        if len(scored) == 14:
            raise KeyboardInterrupt
        scored.append(a)
        return distance(a)
    with pytest.raises(KeyboardInterrupt):
        random_search(SPACE, interrupted, cfg, random.Random(3), checkpoint=ckpt, progress=False)
    assert len(json.loads(ckpt.read_text())["scores"]) == 10
    assert random_search(SPACE, distance, cfg, random.Random(3), checkpoint=ckpt, progress=False) == full


def test_random_search_scores_distinct_architectures():
    ranked = random_search(SPACE, distance, SearchConfig(random_candidates=40), random.Random(0),
                           progress=False)
    assert len(ranked) == 40 == len({a for a, _ in ranked})
    assert [s for _, s in ranked] == sorted(s for _, s in ranked)


def test_evolution_beats_random_search_at_equal_evaluations():
    """The point of evolution: in V1-nonsync (20 genes, 9.5e13 architectures) 1,000
    evaluations of random search land 8-10 genes from a hidden target; mutation and
    crossover from the best parents get within one gene."""
    space = get_space("v1-nonsync")
    target = space.sample(random.Random(123))

    def dist(a):
        return float(space.hamming(a, target))
    for seed in range(3):
        evolved = evolutionary_search(space, dist, SearchConfig(), random.Random(seed), progress=False)
        drawn = random_search(space, dist, SearchConfig(random_candidates=20 * 50), random.Random(seed),
                              progress=False)
        assert evolved[0][1] <= 1.0 and drawn[0][1] >= 5.0, seed


def test_search_budgets_on_parameters_and_latency_reject_what_breaks_them():
    """--max-params and --max-latency-ms become one budget; latency is measured once
    per architecture (here a stand-in: 1 ms per 3x3 convolution edge), and what was
    measured is what results.json records."""
    from depthnas.budget import Budget
    from depthnas.config import Config
    from depthnas.models import path_parameters
    measured = []

    def fake_latency(space, arch, cfg, device):
        measured.append(arch)
        return float(space.to_string(arch).count("c3"))
    cfg = Config()
    assert Budget.of(SPACE, cfg, "cpu") is None  # no limit set: nothing to judge
    cfg.search.max_latency_ms = 2.0
    ok = Budget(SPACE, cfg, "cpu", measure=fake_latency)
    two = SPACE.from_string("v1-sync:c3,c3,c1,ap,skip")
    assert ok(two) and ok(two)
    assert not ok(SPACE.from_string("v1-sync:c3,c3,c3,ap,skip"))
    assert len(measured) == 2  # the repeated architecture was not measured again
    assert ok.record(two) == {"latency_ms": 2.0}
    small, big = SPACE.from_string("v1-sync:skip,skip,skip,skip,skip"), SPACE.from_string("v1-sync:c3,c3,c3,c3,c3")
    cfg.search.max_latency_ms = None
    cfg.search.max_params = path_parameters(SPACE, small, cfg.model)
    ok = Budget(SPACE, cfg, "cpu", measure=fake_latency)
    assert ok(small) and not ok(big)
    assert ok.record(small) == {} and len(measured) == 2  # parameters alone: nothing timed


def test_latency_figures_are_kept_for_a_resume_of_the_same_setup_alone(tmp_path, monkeypatch):
    """A resume re-timed its picks and reported figures they were never judged by; kept
    by device name alone, figures of another image size judged a later run, and a file
    rewritten after each of a search's thousand timings cost seconds to minutes."""
    import depthnas.io
    from depthnas.budget import Budget
    from depthnas.config import Config
    cfg = Config()
    cfg.search.max_latency_ms = 2.0
    path = tmp_path / "latency.json"
    archs = [SPACE.sample(random.Random(i)) for i in range(40)]
    writes = []
    real = depthnas.io.atomic_write_json
    monkeypatch.setattr(depthnas.io, "atomic_write_json", lambda *a: writes.append(a) or real(*a))
    first = Budget(SPACE, cfg, "cpu", measure=lambda *a: 1.5, timings=path)
    for a in archs:
        first.latency(a)
    assert len(writes) == 1  # the first timing; then at most every SAVE_EVERY_S, and on save()
    first.save()
    again = Budget(SPACE, cfg, "cpu", measure=lambda *a: 9.0, timings=path)
    assert [again.latency(a) for a in archs] == [1.5] * 40  # the figures judged by
    cfg.data.image_size = (128, 128)  # another setup: timed again
    other = Budget(SPACE, cfg, "cpu", measure=lambda *a: 9.0, timings=path)
    assert other.latency(archs[0]) == 9.0


@pytest.mark.parametrize("search", [evolutionary_search, random_search])
def test_paths_at_a_constant_prediction_s_level_rank_after_every_live_path(search):
    """make search used to pick super-net paths whose head died: their loss (the
    target variance, 0.20036 on the quick preset's scenes) beat live paths that a
    short training left at 0.2026-0.2215. With the search order they rank last, as
    parents and as results, and keep their true scores."""
    from depthnas.degenerate import search_order
    constant = 0.20036
    dead = lambda a: SPACE.to_string(a).split(":")[1].startswith("ap")  # noqa: E731

    def score(a):
        return constant if dead(a) else 0.2026 + 0.001 * distance(a)
    cfg = SearchConfig(population=12, generations=4, parents=4, mutations=4, crossovers=4,
                       random_candidates=40)
    ranked = search(SPACE, score, cfg, random.Random(5), progress=False,
                    order=search_order(SPACE, constant))
    flags = [dead(a) or SPACE.ignores_input(a) for a, _ in ranked]  # a dead cell too
    assert any(flags) and not flags[0]
    assert flags == sorted(flags)                    # every live path before every dead one
    assert all(s == score(a) for a, s in ranked)     # the scores are the true values
    live = [s for a, s in ranked if not (dead(a) or SPACE.ignores_input(a))]
    assert live == sorted(live)
    # without the order, the dead paths win, as they did
    plain = search(SPACE, score, cfg, random.Random(5), progress=False)
    assert dead(plain[0][0])


def test_a_dead_cell_ranks_after_every_live_path_whatever_its_score():
    """A dead cell cuts the input off (v1-sync:none,none,none,none,c3): the path's
    score, near a constant prediction's but outside the 0.1% that marks one, beat the
    live paths of a short super-net training, and a search reported it as its best."""
    from depthnas.degenerate import search_order
    constant = 0.17758

    def score(a):
        return 0.17985 if SPACE.ignores_input(a) else 0.18 + 0.001 * distance(a)
    cfg = SearchConfig(random_candidates=600)
    ranked = random_search(SPACE, score, cfg, random.Random(5), progress=False,
                           order=search_order(SPACE, constant))
    flags = [SPACE.ignores_input(a) for a, _ in ranked]
    assert any(flags) and flags == sorted(flags)
    assert SPACE.ignores_input(SPACE.parse("v1-sync:none,none,none,none,c3"))
    assert not SPACE.ignores_input(SPACE.parse("v1-sync:none,none,c3,none,none"))


@pytest.mark.parametrize("search", [evolutionary_search, random_search])
def test_a_diverged_path_s_nan_score_ranks_last_and_leaves_the_order_intact(search, caplog):
    """NaN compares false with everything: one NaN in the sort scrambled parents, the
    picks and the logged best."""
    nan_genes = lambda a: SPACE.to_string(a).split(":")[1].startswith("c1")  # noqa: E731

    def score(a):
        return float("nan") if nan_genes(a) else distance(a)
    cfg = SearchConfig(population=12, generations=4, parents=4, mutations=4, crossovers=4,
                       random_candidates=40)
    with caplog.at_level("WARNING", logger="depthnas.evolution"):
        ranked = search(SPACE, score, cfg, random.Random(2), progress=False)
    finite = [s for _, s in ranked if s == s]
    assert len(finite) < len(ranked)                       # some paths diverged
    assert finite == sorted(finite) and ranked[:len(finite)] == [kv for kv in ranked if kv[1] == kv[1]]
    assert "diverged" in caplog.text and "ranks last" in caplog.text


def test_each_purpose_draws_its_own_random_stream():
    """The searches drew from Random(seed * 31 + t) and the ranking sample from
    Random(seed * 97 + 1): at seed 0 the second search and the ranking sample were the
    same stream, so the 'random' sample was that search's own first candidates."""
    from depthnas.runtime import seeded_rng
    space = get_space("v1-sync")

    def first(rng, n=5):
        return [space.sample(rng) for _ in range(n)]
    for seed in range(3):
        streams = [first(seeded_rng(seed, "search", t)) for t in range(3)]
        streams += [first(seeded_rng(seed, "rank sample")), first(seeded_rng(seed, "landmarks"))]
        assert len({tuple(s) for s in streams}) == len(streams)
        assert first(seeded_rng(seed, "search", 1)) == first(seeded_rng(seed, "search", 1))
    # the same in every process (a resume, each torchrun rank): a value fixed here, as an
    # in-process comparison cannot see a seed that differs per process (hash() of a str)
    assert seeded_rng(0, "search", 1).random() == 0.49883534539699426


def test_new_models_takes_one_string_per_model_unless_told_to_keep_one():
    """Picks and ranking samples: one string per model, none of a model trained; `keep`
    takes a twin all the same (a run of an older depthnas trained both, and resumes)."""
    twin_a, twin_b, twin_c = (SPACE.from_string(f"v1-sync:{s}") for s in
                              ("c3,c3,ap,c1,none", "skip,c1,ap,c1,none", "none,none,ap,c1,none"))
    other = SPACE.from_string("v1-sync:c1,c3,skip,ap,c3")
    assert new_models(SPACE, [twin_b, twin_c, other], [twin_a], 2) == [other]
    assert new_models(SPACE, [twin_a, twin_b, other, twin_c], [], 2) == [twin_a, other]
    assert new_models(SPACE, [twin_a, twin_b, other], [twin_a], 3,
                      keep=lambda a: a == twin_b) == [twin_b, other]


def _unique_score(a):
    """A score no two architectures share, so "the best k" is one set."""
    return int(hashlib.sha256(SPACE.to_string(a).encode()).hexdigest(), 16) % 10**12 / 1e12


def test_parents_are_exactly_the_best_so_far(monkeypatch):
    """Mutants and crossovers come from the best `parents` scored before their
    generation, no more."""
    scored = {}
    used = []
    mutate, crossover = type(SPACE).mutate, type(SPACE).crossover

    def score(a):
        scored[a] = _unique_score(a)
        return scored[a]

    def best():
        return set(sorted(scored, key=scored.get)[:2])

    def spy_mutate(self, arch, rng, prob=None):
        used.append(arch in best())
        return mutate(self, arch, rng, prob)

    def spy_crossover(self, a, b, rng):
        used.extend([a in best(), b in best()])
        return crossover(self, a, b, rng)
    monkeypatch.setattr(type(SPACE), "mutate", spy_mutate)
    monkeypatch.setattr(type(SPACE), "crossover", spy_crossover)
    cfg = SearchConfig(population=12, generations=4, parents=2, mutations=6, crossovers=6)
    evolutionary_search(SPACE, score, cfg, random.Random(0), progress=False)
    assert len(used) > 30 and all(used)


def test_crossovers_draw_both_parents_at_random(monkeypatch):
    """Uniform crossover of two parents drawn from the best `parents`: the first is not
    always the best one."""
    firsts = []
    crossover = type(SPACE).crossover

    def spy(self, a, b, rng):
        firsts.append(a)
        return crossover(self, a, b, rng)
    monkeypatch.setattr(type(SPACE), "crossover", spy)
    cfg = SearchConfig(population=12, generations=2, parents=4, mutations=4, crossovers=8)
    evolutionary_search(SPACE, _unique_score, cfg, random.Random(0), progress=False)
    assert len(set(firsts)) > 1


def test_new_models_takes_exactly_n():
    archs = [SPACE.from_string(f"v1-sync:{s}") for s in
             ("c1,c3,skip,ap,c3", "c3,c3,c3,c3,c3", "c1,c1,c1,c1,c1", "ap,c3,c1,skip,c3")]
    assert len({SPACE.function_key(a) for a in archs}) == 4
    assert new_models(SPACE, archs, [], 2) == archs[:2]
    assert new_models(SPACE, archs, [], 0) == []


def test_keep_never_takes_an_architecture_already_taken():
    """`keep` admits a twin of a taken model, not the taken string itself (it would be
    trained a second time)."""
    a = SPACE.from_string("v1-sync:c3,c3,ap,c1,none")
    twin = SPACE.from_string("v1-sync:skip,c1,ap,c1,none")
    assert new_models(SPACE, [a, twin], [a], 2, keep=lambda x: True) == [twin]


def test_a_checkpoint_of_another_space_is_named_as_such(tmp_path):
    """Not called "damaged": it is whole, and for another space."""
    ckpt = tmp_path / "search.json"
    cfg = SearchConfig(population=6, generations=1, random_candidates=6)
    random_search(SPACE, distance, cfg, random.Random(0), checkpoint=ckpt, progress=False)
    other = get_space("v1-nonsync")
    with pytest.raises(ValueError, match=f"search checkpoint {ckpt} is for space 'v1-sync'"):
        random_search(other, lambda a: 0.0, cfg, random.Random(0), checkpoint=ckpt, progress=False)


def test_a_path_cut_off_only_by_zeros_as_the_first_block_s_input_is_ranked_last():
    """With model.first_block_input=zeros the coarsest block's node 0 carries nothing:
    v1-sync:ap,skip,c1,none,none then ignores its input (it would not under the
    default 'duplicate'). The search must judge it with the models' own settings, or
    it picks a model that is no depth estimator whenever its score is lowest."""
    from depthnas.degenerate import collapsed, search_order
    from depthnas.spaces import get_space
    space = get_space("v1-sync")
    cut, live = space.parse("v1-sync:ap,skip,c1,none,none"), space.parse("v1-sync:c3,c3,c3,c3,c3")
    zeros = {"first_block_input": "zeros"}
    assert collapsed(space, cut, 0.1, 0.2, zeros) and not collapsed(space, cut, 0.1, 0.2)
    order = search_order(space, 0.2, zeros)
    assert min([(cut, 0.1), (live, 0.15)], key=lambda p: order(*p))[0] == live


def test_every_one_of_the_best_parents_is_drawn_from(monkeypatch):
    """All of the best `parents` so far: a pool cut short (the best one alone) keeps
    every parent among the best, which is all test_parents_are_exactly_the_best_so_far
    checks."""
    scored, drawn, best = {}, [], []
    mutate = type(SPACE).mutate

    def score(a):
        scored[a] = _unique_score(a)
        return scored[a]

    def spy(self, arch, rng, prob=None):
        if not drawn or best[-1] != set(sorted(scored, key=scored.get)[:3]):
            drawn.append(set())  # a new generation: the scores moved since the last draw
            best.append(set(sorted(scored, key=scored.get)[:3]))
        drawn[-1].add(arch)
        return mutate(self, arch, rng, prob)
    monkeypatch.setattr(type(SPACE), "mutate", spy)
    cfg = SearchConfig(population=12, generations=3, parents=3, mutations=12, crossovers=0)
    evolutionary_search(SPACE, score, cfg, random.Random(0), progress=False)
    assert len(drawn) == 2 and drawn == best


@pytest.mark.parametrize("content", ['{"space": "v1-sync", "rng"', '{"space": "v1-sync"}'])
def test_a_damaged_checkpoint_is_named_with_every_way_on(tmp_path, content):
    """Cut short it said "not valid JSON" and nothing more; missing a key it said
    "delete it to search again", which a resume then refused for a search the
    super-net had trained past (that needs its checkpoints deleted too)."""
    ckpt = tmp_path / "search_1.json"
    ckpt.write_text(content)
    with pytest.raises(ValueError, match=rf"search_1.json.*restore it, or delete it to search again \(and, "
                                         rf"if the super-net has trained past this search, "
                                         rf"{tmp_path / 'checkpoints'} too"):
        random_search(SPACE, distance, SearchConfig(), random.Random(0), checkpoint=ckpt, progress=False)
