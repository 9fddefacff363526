"""The live view's dialogs: send a tell or an ask as the user, confirm a restart, read a message."""

from __future__ import annotations

from typing import ClassVar

from podctl.broker.transcript import visible
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


class SendForm(ModalScreen[tuple[str, str] | None]):
    """A text field with the cursor in it; Tab changes the recipient, Enter sends, Escape cancels.
    Dismissed with (recipient, text), or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "cancel"),
        Binding("tab", "recipient(1)", "next recipient", priority=True),
        Binding("shift+tab", "recipient(-1)", "previous recipient", priority=True),
    ]

    def __init__(self, kind: str, recipients: list[str], selected: str | None) -> None:
        super().__init__()
        self.kind = kind
        self.recipients = recipients
        self.index = recipients.index(selected) if selected in recipients else 0

    def compose(self) -> ComposeResult:
        with Vertical(id="form"):
            yield Label(f"{'Ask' if self.kind == 'ask' else 'Tell'} as user", id="form-title")
            yield Label(self._to_line(), id="form-to")
            yield Input(placeholder="message (Enter sends, Escape cancels)", id="form-text")

    def on_mount(self) -> None:
        self.query_one("#form-text", Input).focus()

    def _to_line(self) -> Text:
        line = Text("to: ")
        line.append(visible(self.recipients[self.index]), style="bold")
        line.append("   (Tab: next recipient)", style="dim")
        return line

    def action_recipient(self, step: int) -> None:
        self.index = (self.index + step) % len(self.recipients)
        self.query_one("#form-to", Label).update(self._to_line())

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss((self.recipients[self.index], event.value))


class ReasonForm(ModalScreen[str | None]):
    """Deny an agent's request: the reason its model reads (Enter denies, Escape cancels). Dismissed
    with the reason (maybe empty), or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def __init__(self, agent: str, what: str) -> None:
        super().__init__()
        self.agent = agent
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(id="form"):
            yield Label(Text(f"Deny {visible(self.agent)}: {visible(self.what)}"), id="form-title")
            yield Input(placeholder="why (its model reads this; Enter denies, Escape cancels)", id="form-text")

    def on_mount(self) -> None:
        self.query_one("#form-text", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())


class Confirm(ModalScreen[bool]):
    """A yes/no question: y or Enter confirms, n or Escape declines."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="form"):
            yield Static(Text(self.question))  # wraps in the dialog's width (a Label is cut at 80 columns)
            yield Label(Text("y: yes   n: no", style="dim"))

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class MessageView(ModalScreen[None]):
    """One message in full (its text can be long), with its delivery marks."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,q", "close", "close")]

    def __init__(self, body: Text) -> None:
        super().__init__()
        self.body = body

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="message"):
            yield Static(self.body)

    def action_close(self) -> None:
        self.dismiss(None)
