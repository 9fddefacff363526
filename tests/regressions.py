"""Which test guards which defect: the defects the issues named, each with the tests that failed before
its fix (tests/test_regressions.py fails if a test named here no longer exists).

A new defect gets its line here with its regression test. Keys say where the defect was named
(issue and item) and what it was, in a few words.
"""

from __future__ import annotations

REGRESSIONS: dict[str, list[str]] = {
    "#19.1 a pod edited while down (agents removed) did not come up": [
        "tests/orchestrator/test_up.py::test_any_edit_of_a_pod_that_is_down_comes_up_and_keeps_the_removed_agents_history",
    ],
    "#19.2 one MCP session stalled the broker; a cancelled write left a transaction open": [
        "tests/broker/test_mcp_limits.py::test_a_flood_of_tool_calls_from_one_session_costs_the_others_nothing",
        "tests/broker/test_mcp_limits.py::test_an_agents_calls_beyond_its_cap_wait_for_its_own_not_the_others",
        "tests/broker/test_mcp_limits.py::test_an_agent_has_at_most_its_cap_of_mcp_sessions_and_a_new_one_always_gets_in",
        "tests/broker/test_transactions.py::test_a_write_cancelled_at_any_point_leaves_no_transaction_open",
        "tests/broker/test_transactions.py::test_a_store_found_inside_a_transaction_rolls_it_back_and_goes_on",
    ],
    "#19.3 a forged worktree record made delete remove any folder": [
        "tests/orchestrator/test_worktrees.py::test_a_forged_worktree_record_never_makes_delete_or_remove_touch_what_it_names",
    ],
    "#19.4 one out-of-range usage line stopped all token accounting": [
        "tests/orchestrator/test_usage.py::test_an_out_of_range_usage_line_is_skipped_with_one_log_line_and_the_rest_counted",
        "tests/orchestrator/test_usage.py::test_the_broker_refuses_an_out_of_range_record_alone_and_stores_the_rest",
    ],
    "#19.5 a page cut by size said there was nothing more": [
        "tests/broker/test_paging.py::test_history_and_inboxes_say_more_when_a_page_is_cut_by_size",
        "tests/broker/test_paging.py::test_more_is_false_on_the_last_page_cut_by_count",
        "tests/broker/test_paging.py::test_the_store_of_a_pod_that_is_down_pages_by_size_too",
    ],
    "#19.6 an agent whose CLI never answered showed busy; send --wait exited 0 on a timeout": [
        "tests/orchestrator/test_cli_exits.py::test_send_wait_without_a_reply_says_so_and_exits_3",
        "tests/broker/test_lifecycle.py::test_a_cli_just_started_has_a_fresh_clock_and_is_starting_until_it_shows_it_is_up",
        "tests/clis/test_codex.py::test_codex_at_its_login_screen_is_blocked_not_idle",
    ],
    "#19.7 the relay died on a malformed line; batches and object ids unanswered": [
        "tests/shim/test_relay.py::test_the_relay_answers_any_line_and_never_forwards_a_lines_tail",
        "tests/broker/test_mcp_limits.py::test_mcp_lines_that_are_no_valid_request_are_answered",
    ],
    "#19.8 a tool call in flight when the broker died got no answer": [
        "tests/shim/test_relay.py::test_a_call_in_flight_when_the_broker_dies_gets_the_answer_of_a_broker_that_is_down",
    ],
    "#19.9 a lone surrogate or a deeply nested frame got no answer and a traceback": [
        "tests/broker/test_hostile_requests.py::test_a_frame_nested_too_deeply_or_holding_a_lone_surrogate_is_a_bad_request",
    ],
    "#19.10 a 600 MB usage line took the supervisor's memory and CPU": [
        "tests/orchestrator/test_usage.py::test_a_line_longer_than_the_limit_is_skipped_once_without_being_held_or_read_again",
    ],
    "#19.11 a FIFO pod file blocked reloads; a pod no longer following its file was not said": [
        "tests/orchestrator/test_up.py::test_a_fifo_in_place_of_the_pod_file_is_refused_and_later_saves_are_applied",
        "tests/orchestrator/test_ui.py::test_the_header_says_when_the_pod_no_longer_follows_its_pod_file",
    ],
    "#19.12 Ctrl-C and a closed pipe printed tracebacks": [
        "tests/orchestrator/test_cli_exits.py::test_ctrl_c_on_tail_follow_exits_130_without_a_traceback",
        "tests/orchestrator/test_cli_exits.py::test_output_into_a_closed_pipe_ends_the_command_quietly",
    ],
    "#19.13 Ctrl-C during up left a half-up pod without a word": [
        "tests/orchestrator/test_appliers.py::test_ctrl_c_during_up_says_what_was_left_and_ls_shows_it",
    ],
    "#19.14 send --ask --wait -3 sent the ask, then failed": [
        "tests/orchestrator/test_cli_exits.py::test_a_bad_wait_is_refused_before_the_ask_is_sent",
    ],
    "#19.15 money rounded to nonsense; tokens and cost in one column": [
        "tests/broker/test_budget.py::test_small_amounts_keep_enough_digits_to_mean_something",
        "tests/orchestrator/test_cli_tables.py::test_tokens_and_cost_have_a_column_each_and_small_costs_keep_their_digits",
    ],
    "#19.16 doctor and the tests wrote into the user's home": [
        "tests/orchestrator/test_cli_answers.py::test_doctor_runs_the_clis_version_checks_in_a_throwaway_home_and_never_writes_the_users",
        "tests/test_environment.py::test_every_test_runs_with_a_throwaway_home_of_its_own",
    ],
    "#19.17 the live view's search kept the focus after Enter": [
        "tests/orchestrator/test_ui.py::test_enter_ends_the_search_and_the_keys_work_again",
    ],
    "a blocked agent seen blocked could lose it to a kill -9 (its need was shown before it was stored)": [
        "tests/broker/test_attention.py::test_blocked_and_why_survive_a_broker_restart",
    ],
    "#22 the broker's parts reached into each other; modules and classes grew past reading": [
        "tests/test_architecture.py::test_a_part_of_the_broker_knows_the_rest_only_through_its_host",
        "tests/test_architecture.py::test_no_module_is_over_500_lines_and_no_class_over_400",
        "tests/test_architecture.py::test_the_op_table_says_who_may_call_each_operation_as_the_wire_protocol_does",
    ],
    "#22 vocabularies and the state folder's names were written in many places": [
        "tests/test_architecture.py::test_each_vocabulary_is_written_once_and_the_runtime_tuples_follow_it",
        "tests/test_architecture.py::test_the_state_folders_names_are_written_only_in_its_layout",
    ],
    "#25 a cheaper argument check must accept exactly what pydantic accepts": [
        "tests/broker/test_args.py::test_the_plain_check_accepts_exactly_what_strict_pydantic_accepts",
        "tests/broker/test_args.py::test_a_checked_operation_answers_as_pydantic_alone_would",
    ],
}
