"""The stand-in's PostgREST query grammar (pure parsing, no database)."""

from __future__ import annotations

import pytest

from parlant_supabase_sync.local.grammar import (
    Field,
    Filter,
    GrammarError,
    JsonOp,
    LogicTree,
    parse_columns,
    parse_filter_value,
    parse_logic,
    parse_order,
    parse_query,
    parse_select,
    parse_tree_path,
)

COL = Field("title")


def flt(value: str, field: Field = COL) -> Filter:
    return parse_filter_value(field, value)


class TestTopLevelValues:
    def test_value_after_the_operator_is_verbatim_including_quotes_and_commas(self) -> None:
        assert flt('eq."Bob"').value == '"Bob"'
        assert flt("eq.a,b (c)").value == "a,b (c)"

    @pytest.mark.parametrize(
        ("text", "op"),
        [
            ("eq.1", "eq"), ("neq.1", "neq"), ("gt.1", "gt"), ("gte.1", "gte"), ("lt.1", "lt"),
            ("lte.1", "lte"), ("like.a*", "like"), ("ilike.a*", "ilike"), ("match.^a", "match"),
            ("imatch.^a", "imatch"), ("cs.{a}", "cs"), ("cd.{a}", "cd"), ("ov.{a}", "ov"),
            ("sl.[1,2)", "sl"), ("sr.[1,2)", "sr"), ("nxr.[1,2)", "nxr"), ("nxl.[1,2)", "nxl"),
            ("adj.[1,2)", "adj"), ("isdistinct.x", "isdistinct"), ("fts.cat", "fts"),
            ("plfts.cat", "plfts"), ("phfts.cat", "phfts"), ("wfts.cat", "wfts"),
        ],
    )
    def test_every_operator_is_recognised(self, text: str, op: str) -> None:
        assert flt(text).op == op

    def test_not_prefix_negates(self) -> None:
        parsed = flt("not.eq.1")
        assert parsed.negate and parsed.op == "eq" and parsed.value == "1"

    def test_quantifiers(self) -> None:
        parsed = flt("like(any).{a*,b*}")
        assert (parsed.op, parsed.quant, parsed.value) == ("like", "any", "{a*,b*}")
        assert flt("eq(all).{1}").quant == "all"

    def test_fts_language(self) -> None:
        parsed = flt("fts(english).cats")
        assert (parsed.lang, parsed.value) == ("english", "cats")

    @pytest.mark.parametrize("word", ["null", "NULL", "Null", "not_null", "true", "false", "unknown"])
    def test_is_values_are_case_insensitive(self, word: str) -> None:
        assert flt(f"is.{word}").value == word.lower()

    @pytest.mark.parametrize("text", ["", "noop.1", "eq", "is.maybe", "eqq.1"])
    def test_bad_operator_expressions_are_pgrst100(self, text: str) -> None:
        with pytest.raises(GrammarError) as info:
            flt(text)
        assert info.value.message.startswith(f'"failed to parse filter ({text})" (line 1, column ')


class TestInLists:
    def test_quoted_elements_may_contain_reserved_characters(self) -> None:
        assert flt('in.("Hebdon, John","Q\\"uote","a\\\\b")').values == ("Hebdon, John", 'Q"uote', "a\\b")

    def test_spaces_after_commas_belong_to_the_next_element(self) -> None:
        assert flt("in.( a, b)").values == ("a", " b")

    def test_unquoted_paren_silently_truncates_the_list(self) -> None:
        assert flt("in.(f(x),y)").values == ("f(x",)

    def test_quote_not_followed_by_a_delimiter_is_literal(self) -> None:
        assert flt('in.("ab"c,d)').values == ('"ab"c', "d")

    def test_lone_quote_is_a_value(self) -> None:
        assert flt('in.(")').values == ('"',)

    def test_empty_list_and_empty_quoted_string_are_both_one_empty_element(self) -> None:
        # The SQL builder turns [""] into `= ANY('{}')` (no rows), as PostgREST does.
        assert flt("in.()").values == ("",)
        assert flt('in.("")').values == ("",)

    def test_missing_closing_paren_is_an_error(self) -> None:
        with pytest.raises(GrammarError):
            flt("in.(a,b")


class TestLogicTrees:
    def test_nested_groups_and_negation(self) -> None:
        _, tree = parse_logic("or", "(age.lt.18,not.and(age.gte.65,retired.is.true))")
        assert tree.op == "or" and not tree.negate
        inner = tree.children[1]
        assert isinstance(inner, LogicTree) and inner.negate and inner.op == "and"

    def test_not_prefix_on_the_key(self) -> None:
        _, tree = parse_logic("not.or", "(a.eq.1)")
        assert tree.negate

    def test_quoted_values_are_unquoted_and_unescaped(self) -> None:
        _, tree = parse_logic("or", '(data->name.eq."\\"Alice\\"",title.eq."a,b")')
        first, second = tree.children
        assert isinstance(first, Filter) and first.value == '"Alice"'
        assert first.field == Field("data", (JsonOp("->", "name", False),))
        assert isinstance(second, Filter) and second.value == "a,b"

    def test_braces_keep_commas(self) -> None:
        _, tree = parse_logic("and", "(tags.cs.{a,b},id.eq.1)")
        assert isinstance(tree.children[0], Filter) and tree.children[0].value == "{a,b}"

    def test_negated_condition_inside_a_tree(self) -> None:
        _, tree = parse_logic("or", "(id.not.in.(1,2),id.is.null)")
        first = tree.children[0]
        assert isinstance(first, Filter) and first.negate and first.op == "in"

    def test_unquoted_paren_truncates_the_tree(self) -> None:
        _, tree = parse_logic("or", "(title.eq.f(x),id.eq.1)")
        assert len(tree.children) == 1 and isinstance(tree.children[0], Filter)
        assert tree.children[0].value == "f(x"

    def test_trailing_blank_is_part_of_an_unquoted_value(self) -> None:
        _, tree = parse_logic("or", "( title.eq.x , id.eq.1 )")
        assert isinstance(tree.children[0], Filter) and tree.children[0].value == "x "

    def test_empty_group_reports_the_column_of_op_plus_value(self) -> None:
        with pytest.raises(GrammarError) as info:
            parse_logic("or", "()")
        assert info.value.message == '"failed to parse logic tree (())" (line 1, column 4)'

    def test_not_before_a_column_inside_a_tree_is_an_error(self) -> None:
        with pytest.raises(GrammarError):
            parse_logic("or", "(not.id.eq.1)")

    def test_unquoted_comma_in_a_value_is_an_error(self) -> None:
        with pytest.raises(GrammarError):
            parse_logic("or", "(title.eq.a,b)")


class TestJsonPaths:
    def test_chains_indexes_and_quoted_keys(self) -> None:
        _, fld = parse_tree_path('data->a->0->>"b.c"')
        assert fld == Field(
            "data", (JsonOp("->", "a", False), JsonOp("->", "0", True), JsonOp("->>", "b.c", False))
        )

    def test_negative_index_and_dashed_keys(self) -> None:
        _, fld = parse_tree_path("data->first-name->>-1")
        assert fld.path == (JsonOp("->", "first-name", False), JsonOp("->>", "-1", True))

    def test_trailing_garbage_after_a_key_is_ignored(self) -> None:
        _, fld = parse_tree_path("data->>a.b")
        assert fld == Field("data", (JsonOp("->>", "a", False),))

    def test_embedded_path_prefix(self) -> None:
        embed, fld = parse_tree_path("rel.col")
        assert embed == ("rel",) and fld == Field("col")


class TestSelect:
    def test_aliases_casts_and_paths(self) -> None:
        items = parse_select("id,t:title,id::text,name:data->>name,data->tags")
        assert [(i.field.name, i.alias, i.cast) for i in items] == [
            ("id", None, None), ("title", "t", None), ("id", None, "text"),
            ("data", "name", None), ("data", None, None),
        ]

    def test_star_and_embeds(self) -> None:
        items = parse_select("*,rel(a,b)")
        assert items[0].field.name == "*" and items[1].relation

    def test_reserved_character_in_a_key_fails_at_its_column(self) -> None:
        with pytest.raises(GrammarError) as info:
            parse_select("data->(x")
        assert "(line 1, column 7)" in info.value.message

    def test_empty_select_means_every_column(self) -> None:
        assert parse_select("") == []


class TestOrder:
    def test_directions_and_nulls(self) -> None:
        terms = parse_order("a.desc.nullslast,data->>b,c.nullsfirst")
        assert [(t.field.name, t.direction, t.nulls) for t in terms] == [
            ("a", "desc", "nullslast"), ("data", None, None), ("c", None, "nullsfirst"),
        ]

    def test_unknown_modifier_is_an_error(self) -> None:
        with pytest.raises(GrammarError) as info:
            parse_order("a.sideways")
        assert '"asc", "desc", "nullsfirst" or "nullslast"' in info.value.details


class TestQuerySplit:
    def test_repeated_filters_are_all_kept(self) -> None:
        parsed = parse_query([("age", "gte.18"), ("age", "lt.65")])
        assert [f.op for f in parsed.filters] == ["gte", "lt"]

    def test_only_the_first_select_columns_and_on_conflict_count(self) -> None:
        parsed = parse_query([("select", "id"), ("select", "title"), ("columns", "a"), ("columns", "b")])
        assert [i.field.name for i in parsed.select] == ["id"]
        assert parsed.columns == ["a"]

    @pytest.mark.parametrize(("text", "value"), [("5", 5), (" 7 ", 7), ("-1", -1), ("x", None), ("+3", None), ("1.5", None)])
    def test_limit_values_follow_haskell_read(self, text: str, value: int | None) -> None:
        assert parse_query([("limit", text)]).limit == value

    def test_empty_filter_value_is_pgrst100(self) -> None:
        with pytest.raises(GrammarError):
            parse_query([("title", "")])

    def test_rpc_reads_keep_non_filter_values_as_arguments(self) -> None:
        parsed = parse_query([("a", "1"), ("b", "eq.2"), ("c", "")], rpc_read=True)
        assert parsed.rpc_args == [("a", "1"), ("c", "")]
        assert [f.field.name for f in parsed.filters] == ["b"]

    def test_rpc_reads_reject_consumed_prefixes(self) -> None:
        with pytest.raises(GrammarError):
            parse_query([("a", "in.abc")], rpc_read=True)

    def test_columns_list(self) -> None:
        assert parse_columns("a, b,\"c,d\"") == ["a", "b", "c,d"]


class TestParsecLikeMessages:
    def test_unknown_operator_names_the_not_mismatch(self) -> None:
        with pytest.raises(GrammarError) as info:
            flt("noop.0")
        assert info.value.message == '"failed to parse filter (noop.0)" (line 1, column 1)'
        assert info.value.details == 'unexpected "o" expecting "not" or operator (eq, gt, ...)'

    def test_bad_negative_index_reports_the_furthest_failure(self) -> None:
        with pytest.raises(GrammarError) as info:
            parse_select("data->>--34")
        assert info.value.message.endswith("(line 1, column 9)")
        assert info.value.details == 'unexpected "-" expecting digit'

    def test_reserved_key_character_merges_both_expectations(self) -> None:
        with pytest.raises(GrammarError) as info:
            parse_select("data->(x")
        assert info.value.details == (
            'unexpected "(" expecting "-", digit or any non reserved character different from: .,>()'
        )

    @pytest.mark.parametrize("key", ["order", "or", "and", "not.or"])
    def test_empty_values_of_reserved_keys_are_still_parsed(self, key: str) -> None:
        with pytest.raises(GrammarError):
            parse_query([(key, "")])

    def test_empty_limit_is_ignored(self) -> None:
        assert parse_query([("limit", ""), ("offset", "")]).limit is None


@pytest.mark.parametrize(
    ("value", "column", "unexpected"),
    [("eqq.1", 3, "q"), ("not.eqx", 7, "x"), ("isdistinctx", 11, "x"), ("likex", 5, "x")],
)
def test_operator_errors_point_where_the_longest_alternative_stopped(value: str, column: int, unexpected: str) -> None:
    with pytest.raises(GrammarError) as info:
        flt(value)
    assert info.value.message.endswith(f"(line 1, column {column})")
    assert info.value.details == f'unexpected "{unexpected}" expecting operator (eq, gt, ...)'
