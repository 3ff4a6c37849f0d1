//! Coordination between the parts of the server that assume "exactly one of"
//! or "wake the others": leases, a notifier and a session router.
//!
//! Today one process runs everything, so [`InProcess`] implements all three
//! with memory. The interface is what a multi-process backend (PostgreSQL
//! advisory locks and `LISTEN/NOTIFY`, or a lease table) will implement
//! later; every new feature that needs a single runner (a scheduler, an
//! evaluator, a timer wheel), a wake-up of the others (dispatch, a cache to
//! reload) or to reach an agent (which process holds its connection) uses
//! this from the start instead of assuming it is alone.
//!
//! - **Leases**: a named role held by one owner until it expires; the holder
//!   renews it by taking it again before expiry. A lease has an epoch that
//!   grows with every new holder, so work stamped with an old epoch can be
//!   recognised and refused (fencing). [`Coordination::acquire`] waits for
//!   one (standing by while another process holds it).
//! - **Notifier**: [`Coordination::notify`] wakes every [`Subscription`] of a
//!   [`Topic`]. A subscription remembers what it has seen, so a notification
//!   sent while its holder was busy ends its next wait at once (a stored
//!   wake-up), and several in a row wake it once. Subscribe *before* reading
//!   the state the topic is about. Notifying never blocks; waiters re-read
//!   the store, so a missed wake-up costs latency, not correctness.
//! - **Session router**: which process holds a node's agent connection, so a
//!   frame for that node can be forwarded there.
//!
//! Who uses what:
//!
//! | Part | Through | |
//! |---|---|---|
//! | event scheduler (`events/schedule.rs`) | lease `events.scheduler` | renewed every pass (≤ 60 s, lease 180 s) |
//! | workflow runner (`workflows/runner.rs`) | lease `workflows.runner` | renewed every 5 s (lease 15 s); on loss it drains its batches in flight, drops its cache and stands by |
//! | timer wheel (`workflows/timers.rs`) | lease `workflows.timers` | renewed every pass (≤ 1 s, lease 15 s); a new holder reloads the heap from `workflow_timers` |
//! | dispatcher | [`Topic::Dispatch`] | commands, fleet, agent sessions and results wake it |
//! | delivery loop (`events/delivery.rs`) | [`Topic::Deliveries`] | puts, redrives, retries and scheduled events wake it; claims have an owner and an expiry in the store; [`Coordination::alone`] releases all claims at start |
//! | rule cache and scheduler | [`Topic::Rules`] | rule and bus changes; the writer updates its own cache first, a process not alone reloads from the store on each |
//! | `.sync` child executions | [`Topic::ExecutionStatus`] | announced by `workflows::on_status_change` |
//! | `.sync` command tasks | [`Topic::CommandStatus`] | announced by the dispatcher when a command is final |
//! | resolved actors (`runas::ActorCache`) | [`Topic::Identity`] | every user, role and policy change bumps its generation; an actor resolved under an older one is resolved again |
//! | cancel | session router | only the process holding the node's connection sends it |
//!
//! Still assuming one process:
//!
//! - **Live output** (`live.rs`, `GET /v1/commands/{id}/stream`): output
//!   chunks reach the process holding the agent's connection and are fanned
//!   out from its memory. Acceptable because live output is best effort (the
//!   stored result is the record) and a client can be sent to the right
//!   process; a multi-process backend must route a stream request to the
//!   session's process (the session router says which) or publish chunks on
//!   a topic that carries data.
//! - **The audit head file** (`audit-head` in the data directory): written by
//!   the one audit writer after each commit, to detect a cut log. Several
//!   processes cannot share one file; a multi-process backend must keep the
//!   head outside the database another way (each process its own head file
//!   checked against the chain, or an external witness) and serialise
//!   appends (the chain is linear), e.g. under a lease.
//! - **Starts and events reach the local runner**: messages to the runner
//!   go through this process's channel; a process standing by queues them
//!   until it holds the lease. A multi-process backend must forward them to
//!   the holder, and fence the runner's commits with its lease epoch (the
//!   store does not check it yet).
//!
//! Time is passed in (milliseconds), so the lease rules are tested without
//! sleeping.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// A process of the server: random per start.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProcessId(pub String);

impl ProcessId {
    pub fn new() -> Self {
        ProcessId(crate::auth::new_id("p-"))
    }
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Commands or agents changed: the dispatcher should plan again.
    Dispatch,
    /// Rules or buses changed: the scheduler should look again, and a
    /// process that did not make the change should reload its rule cache.
    Rules,
    /// Deliveries became due (events put, redriven, retried): the delivery
    /// loop should claim again.
    Deliveries,
    /// An execution changed status (`.sync` child executions wait for it).
    ExecutionStatus,
    /// A command reached a final status (`.sync` command tasks wait for it).
    CommandStatus,
    /// Users, roles or policies changed: actors resolved before must be
    /// resolved again ([`crate::runas::ActorCache`]).
    Identity,
    /// A parameter with policies was put: the policy evaluator looks again.
    ParameterPolicies,
    /// Parameters, syncs or agents changed, or an agent reported on a sync:
    /// the sync reconciler looks again.
    ParameterSyncs,
    /// Associations changed: the loop that keeps them applied looks again.
    Associations,
    /// Alarms were written: the evaluation loop reads them again.
    Alarms,
    /// Heals were written: the healing loop looks again.
    Heals,
    /// Monitors changed or an agent that runs them connected: every
    /// process's push loop looks again.
    Monitors,
}

/// One topic's notifications: a count of them and the waiters to wake.
#[derive(Debug, Default)]
struct TopicState {
    sent: AtomicU64,
    notify: Notify,
}

/// A waiter's place on a topic: it remembers how many notifications it has
/// seen, so one sent between two waits (while the waiter was busy) is not
/// lost: the next wait returns at once. Every subscription sees every
/// notification; several notifications in a row wake a waiter once.
#[derive(Debug)]
pub struct Subscription {
    topic: Arc<TopicState>,
    seen: u64,
}

impl Subscription {
    /// Wait for a notification sent after this subscription was made or
    /// last woken; return at once if one already was.
    pub async fn notified(&mut self) {
        loop {
            let notified = self.topic.notify.notified();
            tokio::pin!(notified);
            // Registered before the count is read: a notification sent
            // between the read and the await still wakes it.
            notified.as_mut().enable();
            let sent = self.topic.sent.load(Ordering::Acquire);
            if sent != self.seen {
                self.seen = sent;
                return;
            }
            notified.await;
        }
    }
}

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub owner: ProcessId,
    /// Grows with every new holder of this name.
    pub epoch: u64,
    pub expires_at: i64,
}

/// Leases, notifications and session routes, in memory.
#[derive(Debug, Default)]
pub struct InProcess {
    leases: Mutex<HashMap<String, Lease>>,
    topics: Mutex<HashMap<Topic, Arc<TopicState>>>,
    sessions: Mutex<HashMap<String, ProcessId>>,
}

impl InProcess {
    /// Take the lease `name` for `owner` until `now + ttl_ms`, if nobody else
    /// holds it unexpired. The current holder taking it again renews it.
    pub fn try_lease(&self, name: &str, owner: &ProcessId, ttl_ms: i64, now: i64) -> Option<Lease> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let epoch = match leases.get(name) {
            Some(held) if held.owner == *owner && held.expires_at > now => held.epoch,
            Some(held) if held.expires_at > now => return None,
            Some(held) => held.epoch + 1,
            None => 1,
        };
        let lease = Lease {
            name: name.to_string(),
            owner: owner.clone(),
            epoch,
            expires_at: now.saturating_add(ttl_ms),
        };
        leases.insert(name.to_string(), lease.clone());
        Some(lease)
    }

    /// The unexpired holder of `name`, without taking it.
    #[cfg(test)]
    pub fn holder(&self, name: &str, now: i64) -> Option<Lease> {
        let leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        leases.get(name).filter(|l| l.expires_at > now).cloned()
    }

    fn topic(&self, topic: Topic) -> Arc<TopicState> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.entry(topic).or_default().clone()
    }

    /// Wake every subscription of `topic`: those waiting now, and those busy
    /// now at their next wait.
    pub fn notify(&self, topic: Topic) {
        let topic = self.topic(topic);
        topic.sent.fetch_add(1, Ordering::AcqRel);
        topic.notify.notify_waiters();
    }

    /// How many notifications `topic` has had: a generation number that
    /// grows with every change the topic announces.
    pub fn generation(&self, topic: Topic) -> u64 {
        self.topic(topic).sent.load(Ordering::Acquire)
    }

    /// Subscribe to `topic`: notifications from now on wake it.
    pub fn subscribe(&self, topic: Topic) -> Subscription {
        let topic = self.topic(topic);
        let seen = topic.sent.load(Ordering::Acquire);
        Subscription { topic, seen }
    }

    /// `process` holds `node_id`'s connection now.
    pub fn route_session(&self, node_id: &str, process: &ProcessId) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.insert(node_id.to_string(), process.clone());
    }

    /// The connection went away (only if `process` still holds it: a
    /// reconnect to another process may have routed it there already).
    pub fn unroute_session(&self, node_id: &str, process: &ProcessId) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.get(node_id) == Some(process) {
            sessions.remove(node_id);
        }
    }

    /// Which process holds `node_id`'s connection.
    pub fn session_route(&self, node_id: &str) -> Option<ProcessId> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.get(node_id).cloned()
    }
}

/// This server's view of coordination: its process id and the backend.
#[derive(Debug)]
pub struct Coordination {
    pub process: ProcessId,
    pub backend: InProcess,
}

impl Default for Coordination {
    fn default() -> Self {
        Coordination {
            process: ProcessId::new(),
            backend: InProcess::default(),
        }
    }
}

impl Coordination {
    /// Whether this process is the only one (the in-process backend): it may
    /// then treat claims left by a predecessor as ownerless at start instead
    /// of waiting for them to expire.
    pub fn alone(&self) -> bool {
        true
    }

    pub fn notify(&self, topic: Topic) {
        self.backend.notify(topic);
    }

    /// Subscribe before reading the state the notifications are about, so
    /// a change made after the read is not missed.
    pub fn subscribe(&self, topic: Topic) -> Subscription {
        self.backend.subscribe(topic)
    }

    /// The count of `topic`'s notifications so far. Read it before reading
    /// the state it is about; state read under an older generation is stale.
    pub fn generation(&self, topic: Topic) -> u64 {
        self.backend.generation(topic)
    }

    /// Wait until this process holds the lease `name` (taking it for
    /// `ttl_ms`); a process that does not get it stands by and tries again
    /// every third of `ttl_ms`.
    pub async fn acquire(&self, name: &str, ttl_ms: i64) -> Lease {
        loop {
            if let Some(lease) = self.try_lease(name, ttl_ms) {
                return lease;
            }
            tokio::time::sleep(Duration::from_millis((ttl_ms / 3).max(1) as u64)).await;
        }
    }

    /// Take or renew the lease `name` for `ttl_ms` from now.
    pub fn try_lease(&self, name: &str, ttl_ms: i64) -> Option<Lease> {
        self.backend
            .try_lease(name, &self.process, ttl_ms, crate::now_millis())
    }

    /// Renew `lease` (held by this process); false if it was lost meanwhile
    /// (expired and taken by another, or taken again under a new epoch).
    pub fn renew(&self, lease: &Lease, ttl_ms: i64) -> bool {
        self.try_lease(&lease.name, ttl_ms)
            .is_some_and(|renewed| renewed.epoch == lease.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn owner(name: &str) -> ProcessId {
        ProcessId(name.to_string())
    }

    #[test]
    fn one_holder_at_a_time_until_expiry_with_growing_epochs() {
        let c = InProcess::default();
        let a = c.try_lease("scheduler", &owner("a"), 1000, 0).unwrap();
        assert_eq!(a.epoch, 1);
        assert!(c.try_lease("scheduler", &owner("b"), 1000, 500).is_none());
        // The holder taking it again renews, same epoch.
        let again = c.try_lease("scheduler", &owner("a"), 1000, 600).unwrap();
        assert_eq!((again.epoch, again.expires_at), (1, 1600));
        // Expired: another takes it with a higher epoch.
        let b = c.try_lease("scheduler", &owner("b"), 1000, 1600).unwrap();
        assert_eq!(b.epoch, 2);
        // The old holder cannot take it back while the new one holds it.
        assert!(c.try_lease("scheduler", &owner("a"), 1000, 1700).is_none());
        assert!(
            a.epoch < b.epoch,
            "work stamped with epoch {} is stale",
            a.epoch
        );
        // Other names are independent.
        assert!(c.try_lease("evaluator", &owner("a"), 1000, 1700).is_some());
    }

    #[test]
    fn sessions_are_routed_to_their_latest_holder() {
        let c = InProcess::default();
        c.route_session("n-1", &owner("a"));
        c.route_session("n-1", &owner("b")); // reconnected elsewhere
        c.unroute_session("n-1", &owner("a")); // the old session ends late
        assert_eq!(c.session_route("n-1"), Some(owner("b")));
        c.unroute_session("n-1", &owner("b"));
        assert_eq!(c.session_route("n-1"), None);
    }

    const SOON: Duration = Duration::from_secs(1);

    /// The delivery loop and the dispatcher rely on it: a wake-up sent while
    /// they are busy (not waiting) ends their next wait at once.
    #[tokio::test]
    async fn a_notification_sent_while_the_subscriber_is_busy_ends_its_next_wait() {
        let c = Arc::new(InProcess::default());
        let mut sub = c.subscribe(Topic::Deliveries);
        c.notify(Topic::Deliveries);
        c.notify(Topic::Deliveries); // several in a row wake it once
        tokio::time::timeout(SOON, sub.notified())
            .await
            .expect("a stored wake-up");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), sub.notified())
                .await
                .is_err(),
            "no wake-up left"
        );
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move { c.subscribe(Topic::Deliveries).notified().await })
        };
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        c.notify(Topic::Deliveries);
        tokio::time::timeout(SOON, waiter)
            .await
            .expect("woken")
            .unwrap();
    }

    /// `.sync` waits rely on it: every waiter of a topic is woken (not just
    /// one), including one that subscribed, then read the store, and only
    /// then waited; notifications before subscribing are not its concern.
    #[tokio::test]
    async fn every_subscription_is_woken_by_a_notification_after_it_subscribed() {
        let c = Arc::new(InProcess::default());
        c.notify(Topic::ExecutionStatus); // before anyone subscribed
        let mut late = c.subscribe(Topic::ExecutionStatus);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), late.notified())
                .await
                .is_err()
        );
        let mut waiters = Vec::new();
        for _ in 0..3 {
            let mut sub = c.subscribe(Topic::ExecutionStatus);
            waiters.push(tokio::spawn(async move { sub.notified().await }));
        }
        let mut reading = c.subscribe(Topic::ExecutionStatus);
        tokio::task::yield_now().await;
        c.notify(Topic::ExecutionStatus); // while `reading` reads the store
        for waiter in waiters {
            tokio::time::timeout(SOON, waiter)
                .await
                .expect("every waiter woken")
                .unwrap();
        }
        tokio::time::timeout(SOON, reading.notified())
            .await
            .expect("the change after subscribing is not missed");
        // Other topics are independent.
        let mut rules = c.subscribe(Topic::Rules);
        c.notify(Topic::Dispatch);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), rules.notified())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_standby_acquires_the_lease_when_it_expires_and_the_old_holder_cannot_renew() {
        let a = Arc::new(Coordination::default());
        // Another process on the same backend.
        let b = owner("b");
        let held = a.try_lease("workflows.runner", 60).unwrap();
        assert!(a.renew(&held, 60), "the holder renews");
        assert!(
            a.backend
                .try_lease("workflows.runner", &b, 60, crate::now_millis())
                .is_none(),
            "held: the other stands by"
        );
        // `a` stops renewing: `b` takes it once it expires.
        let taken = tokio::time::timeout(SOON, async {
            loop {
                if let Some(l) =
                    a.backend
                        .try_lease("workflows.runner", &b, 60, crate::now_millis())
                {
                    return l;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("taken after expiry");
        assert!(taken.epoch > held.epoch);
        assert!(!a.renew(&held, 60), "the old holder has lost it");
        // `acquire` waits while another holds it.
        let waiting = {
            let a = a.clone();
            tokio::spawn(async move { a.acquire("workflows.runner", 60).await })
        };
        let again = tokio::time::timeout(SOON, waiting).await.unwrap().unwrap();
        assert_eq!(again.owner, a.process);
        assert!(again.epoch > taken.epoch);
    }
}
