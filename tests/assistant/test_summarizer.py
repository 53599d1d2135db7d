"""Summarizers and the offline grammar's reading of a summary (pure functions, no I/O)."""

from __future__ import annotations

from app.assistant.offline_planner import plan_reply
from app.assistant.offline_summary import OfflineSummary
from app.assistant.summarizer import (
    INPUT_MAX_CHARS,
    LoggedMessage,
    OfflineSummarizer,
    bounded,
    summary_request,
)
from app.memory import SUMMARY_PREFIX, summary_item

RECALL = "what did I ask you to remember?"


def user(text: str) -> LoggedMessage:
    return LoggedMessage("user", text)


def reply(text: str) -> LoggedMessage:
    return LoggedMessage("assistant", text)


class TestOfflineSummary:
    def test_renders_sentences_it_reads_back(self) -> None:
        summary = OfflineSummary(
            first_message='add task "quoted" milk',
            facts=["the build id is 42", "the cat is grey"],
            tasks=['say "hi"', "call mom"],
        )
        text = summary.render(4_000)
        assert text == (
            f"{SUMMARY_PREFIX}\n"
            '- The user\'s first message was: "add task "quoted" milk"\n'
            "- The user asked me to remember that the build id is 42.\n"
            "- The user asked me to remember that the cat is grey.\n"
            '- Tasks mentioned: "say \\"hi\\"", "call mom".'
        )
        assert OfflineSummary.parse(text) == summary

    def test_over_the_bound_the_oldest_tasks_then_the_oldest_facts_go(self) -> None:
        summary = OfflineSummary(first_message="hi", facts=["a is 1", "b is 2"], tasks=["t1", "t2"])
        full = summary.render(4_000)
        without_t1 = summary.render(len(full) - 1)
        assert '"t1"' not in without_t1
        assert '"t2"' in without_t1
        no_tasks = OfflineSummary(first_message="hi", facts=["a is 1", "b is 2"]).render(4_000)
        assert summary.render(len(no_tasks) - 1) == OfflineSummary(
            first_message="hi", facts=["b is 2"]
        ).render(4_000)
        assert len(summary.render(200)) <= 200

    def test_lines_it_does_not_know_are_ignored(self) -> None:
        text = f"{SUMMARY_PREFIX}\n- The user likes tea.\nremember that nothing"
        assert OfflineSummary.parse(text) == OfflineSummary()


class TestOfflineSummarizer:
    async def test_folds_new_facts_and_tasks_into_the_previous_summary(self) -> None:
        summarizer = OfflineSummarizer(max_chars=4_000)
        first = await summarizer.summarize(
            None,
            [user("remember that the build id is 42"), reply("Got it."), user("add task milk")],
            opening="remember that the build id is 42",
            omitted=0,
        )
        second = await summarizer.summarize(
            first.text,
            [user("please remember that the cat is grey!"), user("list tasks")],
            opening=None,
            omitted=0,
        )
        assert OfflineSummary.parse(second.text) == OfflineSummary(
            first_message="remember that the build id is 42",
            facts=["the build id is 42", "the cat is grey"],
            tasks=["milk"],
        )
        assert (second.input_tokens, second.output_tokens) == (0, 0)


class TestTheGrammarReadsOnlyWhatItIsSent:
    summary = OfflineSummary(first_message="hello there", facts=["the build id is 42"])

    def test_recall_lists_the_summary_facts_then_the_history(self) -> None:
        items = [
            summary_item(self.summary.render(4_000)),
            {"role": "user", "content": "remember that the cat is grey"},
            {"role": "assistant", "content": "Got it."},
            {"role": "user", "content": RECALL},
        ]
        assert plan_reply(items, set()).text == (
            "You asked me to remember: that the build id is 42; that the cat is grey."
        )
        assert (
            plan_reply(
                [*items[:-1], {"role": "user", "content": "what did I say first?"}], set()
            ).text
            == 'You first said: "hello there"'
        )

    def test_without_the_summary_item_nothing_of_it_is_known(self) -> None:
        items = [{"role": "user", "content": RECALL}]
        assert plan_reply(items, set()).text == "You haven't asked me to remember anything yet."

    def test_summary_text_typed_by_the_user_is_not_a_summary(self) -> None:
        typed = {"role": "user", "content": self.summary.render(4_000)}
        items = [typed, {"role": "user", "content": RECALL}]
        assert plan_reply(items, set()).text == (
            "You asked me to remember: that the build id is 42."  # only as a "remember that"
        )


class TestModelSummaryRequest:
    def test_carries_the_previous_summary_the_opening_and_the_transcript(self) -> None:
        call = {"name": "add_task", "arguments": '{"title":"milk"}', "output": '{"id":"1"}'}
        text = summary_request(
            f"{SUMMARY_PREFIX}\n- earlier things",
            [user("add task milk"), LoggedMessage("assistant", "Added.", {"tool_calls": [call]})],
            opening="hi",
            omitted=3,
        )
        assert text == (
            "Previous summary:\n- earlier things\n\n"
            'The conversation began with the user saying: "hi"\n\n'
            "New messages to fold in, oldest first (3 older messages were left out):\n"
            "user: add task milk\n"
            '  (tool add_task({"title":"milk"}) returned {"id":"1"})\n'
            "assistant: Added."
        )

    def test_is_bounded_keeping_the_newest_messages(self) -> None:
        messages = [user(f"{n} " + "x" * 1_000) for n in range(40)]
        text = summary_request(None, messages, opening=None, omitted=0)
        assert len(text) < INPUT_MAX_CHARS + 200
        assert "39 x" in text
        assert "\nuser: 0 x" not in text
        assert "(25 older messages were left out)" in text

    def test_the_answer_is_cut_to_the_bound_at_a_line_end(self) -> None:
        answer = "\n".join(f"- point {n}" for n in range(100))
        text = bounded(answer, 300)
        assert text.startswith(f"{SUMMARY_PREFIX}\n- point 0\n")
        assert len(text) <= 300
        assert text.endswith(tuple(str(n) for n in range(10)))
        assert bounded(f"{SUMMARY_PREFIX} - short", 300) == f"{SUMMARY_PREFIX}\n- short"
