//! The latest node-access decision, shared between the task that makes it
//! (`controller::node_access`) and the reconcilers that report it in status,
//! and the channel that wakes each resource whose answer changed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::Stream;
use tokio::sync::broadcast;

use super::plan::{Decision, Key, Verdict};

/// The latest decision, shared with the reconcilers, and the channel that wakes them.
pub struct Board {
    decision: RwLock<Option<Arc<Decision>>>,
    wake: broadcast::Sender<Key>,
}

impl Default for Board {
    fn default() -> Self {
        Board { decision: RwLock::new(None), wake: broadcast::channel(1024).0 }
    }
}

impl Board {
    /// The answer for `key`: `None` before the first decision or when the resource is not (yet) seen.
    pub fn verdict(&self, key: &Key) -> Option<Verdict> {
        let guard = self.decision.read().ok()?;
        guard.as_ref()?.verdicts.get(key).cloned()
    }

    /// Keys of the resources whose answer changed, as a stream for `Controller::reconcile_on`.
    pub fn wakeups(&self) -> impl Stream<Item = Key> + Send + 'static {
        futures::stream::unfold(self.wake.subscribe(), |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(key) => return Some((key, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    /// Makes `next` the decision and wakes every resource whose answer changed.
    pub fn publish(&self, next: Decision) {
        let next = Arc::new(next);
        let previous = match self.decision.write() {
            Ok(mut guard) => guard.replace(next.clone()),
            Err(_) => return,
        };
        let empty = BTreeMap::new();
        let before = previous.as_ref().map_or(&empty, |p| &p.verdicts);
        for (key, verdict) in &next.verdicts {
            if before.get(key) != Some(verdict) {
                let _ = self.wake.send(key.clone());
            }
        }
        for key in before.keys().filter(|k| !next.verdicts.contains_key(*k)) {
            let _ = self.wake.send(key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::names::OwnerKind;

    fn key(name: &str) -> Key {
        Key { kind: OwnerKind::Registry, namespace: "ns".into(), name: name.into() }
    }

    #[tokio::test]
    async fn the_board_wakes_exactly_the_resources_whose_answer_changed() {
        let board = Board::default();
        let mut wakeups = Box::pin(board.wakeups());
        assert_eq!(board.verdict(&key("a")), None, "nothing before the first decision");
        let granted = Verdict::Granted { hosts: vec!["a".into()] };
        let mut d = Decision::default();
        d.verdicts.insert(key("a"), granted.clone());
        d.verdicts.insert(key("b"), Verdict::WaitingForClusterIp);
        board.publish(d.clone());
        assert_eq!(wakeups.next().await, Some(key("a")));
        assert_eq!(wakeups.next().await, Some(key("b")));
        // b changes, a does not, c is gone from the next decision... and a new one appears.
        d.verdicts.insert(key("b"), granted.clone());
        board.publish(d.clone());
        assert_eq!(wakeups.next().await, Some(key("b")));
        d.verdicts.remove(&key("a"));
        board.publish(d);
        assert_eq!(wakeups.next().await, Some(key("a")));
        assert_eq!(board.verdict(&key("b")), Some(granted));
        assert_eq!(board.verdict(&key("a")), None);
    }
}
