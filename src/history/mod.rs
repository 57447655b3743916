//! History across comments: what a customer said before.
//!
//! - [`repeat`]: the `history` operator, the last stage before the sink:
//!   a customer's new complaint about a target they complained about within
//!   `actions.repeat_window` raises `repeat_issue`, with the earlier ids in
//!   `repeat_of`;
//! - [`store`]: one partition's history in memory and its file under
//!   `history/`.

pub mod repeat;
pub mod store;
