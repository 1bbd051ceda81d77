"""Safe city names, service slugs and sensor codes: properties over arbitrary input."""
from __future__ import annotations

import re
import unicodedata

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fleetcore.naming import (
    CODE_PATTERN,
    PUNYCODE_PREFIX,
    city_clash_key,
    city_name_problem,
    city_service_slug,
    code_candidates,
    is_valid_code,
    safe_city_name,
    stable_int,
)

SAFE = re.compile(r"[A-Za-z0-9]+(_[A-Za-z0-9]+)*")
SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
names = st.text(min_size=0, max_size=40)


def test_transliterates_to_ascii():
    assert safe_city_name("São Paulo") == "Sao_Paulo"
    assert safe_city_name("Zürich") == "Zurich"
    assert safe_city_name("St. John's") == "St_John_s"
    assert city_service_slug("Sao_Paulo") == "sao-paulo"


def test_names_without_latin_letters_get_their_punycode():
    assert safe_city_name("東京") == "xn_1lqs71d"  # IDNA: xn--1lqs71d
    assert safe_city_name("Москва") == safe_city_name("москва") == "xn_80adxhks"
    assert city_service_slug(safe_city_name("東京")) == "xn-1lqs71d"
    assert city_name_problem("東京") is None and city_name_problem("القاهرة") is None


def test_a_name_without_letters_or_digits_says_so():
    assert city_name_problem("!!!") == "has no letters or digits to build a directory name from"


@given(st.text(min_size=1, max_size=20).filter(lambda n: any(ch.isalnum() for ch in n)))
def test_every_name_with_a_letter_or_digit_gets_a_directory(name):
    safe = safe_city_name(name)
    assert SAFE.fullmatch(safe) and safe == safe_city_name(name)


@given(names)
def test_safe_name_is_ascii_word_characters_only(name):
    safe = safe_city_name(name)
    assert safe == "" or SAFE.fullmatch(safe)


@given(names)
def test_safe_name_is_idempotent(name):
    assert safe_city_name(safe_city_name(name)) == safe_city_name(name)


@given(names)
def test_accepted_names_stay_inside_the_data_directory(name):
    if city_name_problem(name) is None:
        safe = safe_city_name(name)
        assert safe and "/" not in safe and ".." not in safe and "\x00" not in safe
        assert safe not in (".", "..")


@given(st.sampled_from(["..", "a/b", "a\\b", "x\x00y", "../etc", "", "  Berlin", "!!!"]))
def test_escaping_names_are_rejected(name):
    assert city_name_problem(name) is not None


@given(names, names)
def test_names_with_different_clash_keys_get_different_directories(a, b):
    # Uniqueness: the clash check compares city_clash_key; distinct keys can never share a directory,
    # even on a case-insensitive file system.
    if city_clash_key(a) != city_clash_key(b):
        assert safe_city_name(a).casefold() != safe_city_name(b).casefold()


@given(names)
def test_the_slug_is_the_safe_name_lowercased_and_back(name):
    safe = safe_city_name(name)
    slug = city_service_slug(safe)
    assert slug == city_service_slug(safe) and (safe == "" or SLUG.fullmatch(slug))
    assert slug.replace("-", "_") == safe.lower()  # round trip up to case, which the clash key folds anyway
    assert city_service_slug(safe_city_name(slug)) == slug


@given(st.text(alphabet=st.characters(categories=("Lo",)), min_size=1, max_size=12))
def test_punycode_safe_names_decode_back_to_the_name(name):
    # Letters without a Latin form ("東京"): the safe name is xn_ + Punycode, so it decodes back.
    safe = safe_city_name(name)
    assume(safe.startswith(PUNYCODE_PREFIX))  # a few Lo letters ("ª") do have a Latin form
    letters = "".join(ch for ch in unicodedata.normalize("NFKC", name).casefold() if ch.isalnum())
    assert safe.removeprefix(PUNYCODE_PREFIX).replace("_", "-").encode("ascii").decode("punycode") == letters


def test_clashing_spellings_share_a_clash_key():
    assert city_clash_key("New York") == city_clash_key("New_York") == city_clash_key("new york")


@given(st.integers(min_value=0, max_value=2**63 - 1), names, st.integers(min_value=0, max_value=10_000))
@settings(max_examples=200)
def test_codes_are_valid_and_deterministic(seed, city, index):
    first = code_candidates(seed, city, index)
    second = code_candidates(seed, city, index)
    codes = [next(first) for _ in range(12)]
    assert codes == [next(second) for _ in range(12)]
    assert all(is_valid_code(code) and CODE_PATTERN.fullmatch(code) for code in codes)
    assert len(codes[0]) == 4
    assert len(set(codes)) == len(codes)


def test_stable_int_does_not_depend_on_hash_randomisation():
    # A fixed value: SHA-256 based, so identical on every machine and interpreter run.
    assert stable_int("sensor", 20250101, "Berlin", 0) == stable_int("sensor", 20250101, "Berlin", 0)
    assert next(code_candidates(20250101, "Amsterdam", 0)) == "QBT6"
