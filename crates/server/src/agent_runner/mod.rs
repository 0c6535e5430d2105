//! AI agents at work (AGENT-2..4): `dispatch` taps this node's committed messages and finds the
//! agents that answer them; `runner` answers one message as one agent — the limits, the model
//! call through `agents::provider` and the streamed message. Kept apart from `agents` (the
//! provider client and its settings, which configuration reads) so that configuration never
//! depends on the server state the runner uses.

pub mod dispatch;
pub mod runner;
