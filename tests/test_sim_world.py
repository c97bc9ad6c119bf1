"""World generation: deterministic, idempotent, public catalog format, real structure."""
from __future__ import annotations

import numpy as np
import orjson
import pytest
import yaml

from sim.config import ConfigError, load_config
from sim.world import (CATALOG_FILE, EMBEDDINGS_FILE, USERS_FILE, generate_world, load_world,
                       nearest_tracks)
from support.sim import SMALL_USERS, SMALL_WORLD, generate_small_world, run_module, write_config


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    config_path = generate_small_world(folder, seed=7)
    return folder, config_path, load_world(folder / "world")


def test_catalog_is_the_public_contract(small):
    folder, _, world = small
    rows = [orjson.loads(line) for line in (folder / "world" / CATALOG_FILE).read_bytes()
            .splitlines()]
    assert [row["track"] for row in rows] == list(range(SMALL_WORLD["tracks"]))
    assert all(set(row) == {"track", "artist", "title"} for row in rows)
    assert all(isinstance(row["artist"], str) and isinstance(row["title"], str) for row in rows)
    tracks_per_artist = np.bincount(world.track_artist)
    assert len({row["artist"] for row in rows}) == SMALL_WORLD["artists"]
    assert tracks_per_artist.min() >= 1
    # skewed: the biggest artists have several times the mean number of tracks
    assert tracks_per_artist.max() > 3 * tracks_per_artist.mean()
    # the same artist name always means the same hidden artist
    for row in rows[:200]:
        assert world.artist_names[world.track_artist[row["track"]]] == row["artist"]


def test_users_follow_the_configured_model(small):
    _, config_path, world = small
    users = load_config(config_path).users
    assert world.interests.shape == (SMALL_USERS["users"], users.interests)
    assert all(len(set(row)) == users.interests for row in world.interests.tolist())
    assert world.interest_neighbours.shape == (SMALL_USERS["users"], users.interests,
                                               users.interest_neighbours)
    assert world.consume_bias.min() >= 0 and world.consume_bias.max() <= 10
    assert world.consume_sharpness.min() >= 0.5 and world.consume_sharpness.max() <= 2
    assert world.session_budget == 5 and world.artist_discount_gamma == 0.8
    # every interest track is its own nearest track
    assert (world.interest_neighbours[:, :, 0] == world.interests).all()


def test_nearest_tracks_is_exact_against_brute_force(small):
    _, _, world = small
    queries = np.arange(0, world.n_tracks, 7)
    found = nearest_tracks(world.embeddings, world.track_genre, queries, 10)
    scores = world.embeddings[queries] @ world.embeddings.T
    for row, query in enumerate(queries):
        expected = np.lexsort((np.arange(world.n_tracks), -scores[row]))[:10]
        assert found[row].tolist() == expected.tolist(), f"query track {query}"


def test_embeddings_nest_genres_over_artists_over_tracks(small):
    _, config_path, world = small
    cosine = world.embeddings @ world.embeddings.T / load_config(config_path).world.scale
    same_artist = world.track_artist[:, None] == world.track_artist[None, :]
    same_genre = world.track_genre[:, None] == world.track_genre[None, :]
    off_diagonal = ~np.eye(world.n_tracks, dtype=bool)
    artist_mates = cosine[same_artist & off_diagonal].mean()
    genre_mates = cosine[same_genre & ~same_artist].mean()
    strangers = cosine[~same_genre].mean()
    assert np.allclose(np.einsum("ij,ij->i", world.embeddings, world.embeddings), 9.0,
                       rtol=1e-4)
    assert artist_mates > genre_mates + 0.15 > strangers + 0.3


def test_same_seed_same_world_other_seed_other_world(small, tmp_path):
    folder, config_path, _ = small
    for name, seed in (("again", "7"), ("other", "8")):
        result = run_module("sim.world", "--config", str(config_path), "--seed", seed,
                            "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    for file in (CATALOG_FILE, EMBEDDINGS_FILE, USERS_FILE):
        original = (folder / "world" / file).read_bytes()
        assert (tmp_path / "again" / file).read_bytes() == original, file
        assert (tmp_path / "other" / file).read_bytes() != original, file


def test_generation_is_idempotent_and_says_what_it_did(tmp_path):
    config_path = write_config(tmp_path)
    out = str(tmp_path / "world")
    first = run_module("sim.world", "--config", str(config_path), "--seed", "3", "--out", out)
    again = run_module("sim.world", "--config", str(config_path), "--seed", "3", "--out", out)
    other = run_module("sim.world", "--config", str(config_path), "--seed", "4", "--out", out)
    assert first.stdout.startswith("generated world")
    assert "up to date" in again.stdout
    assert other.stdout.startswith("regenerated world") and "seed 4" in other.stdout
    assert load_world(tmp_path / "world").seed == 4


def test_generation_in_process_is_deterministic(tmp_path):
    config = load_config(write_config(tmp_path))
    one, two = generate_world(config, 11), generate_world(config, 11)
    assert np.array_equal(one.embeddings, two.embeddings)
    assert np.array_equal(one.interest_neighbours, two.interest_neighbours)
    assert np.array_equal(one.consume_bias, two.consume_bias)
    assert one.titles == two.titles and one.artist_names == two.artist_names


@pytest.mark.parametrize("section, key, value, message", [
    ("world", "trakcs", 10, "world.trakcs: unknown key (a typo?)"),
    ("users", "users", "many", "users.users: Input should be a valid integer"),
    ("world", "artists", 10**6, "must not exceed tracks"),
    ("users", "consume_bias", [10, 0], "consume_bias: [low, high] needs low <= high"),
    ("run", "timeout_s", -1, "run.timeout_s: Input should be greater than 0"),
])
def test_malformed_config_names_the_bad_key(tmp_path, section, key, value, message):
    config = yaml.safe_load(open("conf/sim.yml"))
    config[section][key] = value
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert message in str(error.value)
    result = run_module("sim.world", "--config", str(path), "--out", str(tmp_path / "w"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert not (tmp_path / "w").exists()


def test_missing_config_is_a_clear_error(tmp_path):
    result = run_module("sim.run", "--recommender", "dummy", "--config",
                        str(tmp_path / "nope.yml"), "--world", str(tmp_path / "w"))
    assert result.returncode == 2
    assert "config file not found" in result.stderr and "nope.yml" in result.stderr
