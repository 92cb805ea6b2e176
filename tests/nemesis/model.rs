//! The model: every revocation the run made, of every scope, with what makes it binding
//! (a mirror applied it, or Redis acknowledged it to a replica), and the tokens that must
//! stay accepted (never revoked, or unrevoked on purpose).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{RevocationQuery, RevocationStore, StoreError};

use super::rng::Rng;

/// What a revocation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Token,
    Session,
    Subject,
    Global,
}

pub const SCOPES: [Scope; 4] = [Scope::Token, Scope::Session, Scope::Subject, Scope::Global];

/// Why a revocation binds every store from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// A mirror refused it (the one it was written through, and for the revocations
    /// made right before a fault, another one too).
    Applied,
    /// Written with `Acknowledgement::replicas(1)`, and confirmed.
    Acknowledged,
}

/// When in the round it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Right before the fault, seen refused by another mirror.
    BeforeFault,
    /// By the load running beside the faults.
    Load,
}

/// A revocation to make: what to write, and the query it must refuse.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scope: Scope,
    pub query: RevocationQuery,
    pub ttl: Duration,
    write: Write,
}

#[derive(Debug, Clone)]
enum Write {
    Token(RevocationKey, RevocationKey),
    Session(RevocationKey),
    Subject(RevocationKey, u64),
    Global(u64),
}

impl Plan {
    /// Records it through `store`.
    pub async fn write(&self, store: &dyn RevocationStore) -> Result<(), StoreError> {
        match &self.write {
            Write::Token(token, subject) => store.revoke_token_of(token, Some(subject), self.ttl).await,
            Write::Session(session) => store.revoke_session(session, self.ttl).await,
            Write::Subject(subject, until) => store.raise_subject_watermark(subject, *until, self.ttl).await,
            Write::Global(until) => store.raise_global_watermark(*until, self.ttl).await,
        }
    }

    /// The token key, for an unrevoke.
    /// The key a token revocation is recorded under: the token bound to its subject.
    pub fn token(&self) -> Option<RevocationKey> {
        match &self.write {
            Write::Token(token, subject) => Some(token.for_subject(subject)),
            _ => None,
        }
    }
}

/// A revocation that binds: no store may accept its query again until `expires`.
#[derive(Debug, Clone)]
pub struct Bound {
    pub id: u64,
    pub scope: Scope,
    pub query: RevocationQuery,
    pub expires: Instant,
    pub round: usize,
    pub origin: Origin,
    pub binding: Binding,
    /// Through which store it was written.
    pub through: String,
    pub made: Instant,
}

/// Everything the run made and must keep.
pub struct Model {
    /// Names are unique per run, the prefix per test: nothing collides.
    next: AtomicU64,
    /// Seconds since the epoch at the start; every query of a token that must stay
    /// accepted is issued then.
    pub started_secs: u64,
    /// The global watermark's base: far below any token's `iat`; each global
    /// revocation raises it by one and refuses a token issued at that second.
    global_base: u64,
    global_step: AtomicU64,
    pub binding: Mutex<Vec<Bound>>,
    /// Never revoked, and unrevoked on purpose (with the round): always accepted once
    /// the stores answer.
    pub accepted: Mutex<Vec<(RevocationQuery, String)>>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

impl Model {
    pub fn new(live_tokens: usize) -> Self {
        let started_secs = now_secs();
        let model = Self {
            next: AtomicU64::new(0),
            started_secs,
            global_base: started_secs - 1_000_000,
            global_step: AtomicU64::new(0),
            binding: Mutex::new(Vec::new()),
            accepted: Mutex::new(Vec::new()),
        };
        for _ in 0..live_tokens {
            let n = model.fresh();
            let query = RevocationQuery {
                token: RevocationKey::token(None, &format!("live-{n}")),
                subject: Some(RevocationKey::subject(None, &format!("live-user-{n}"))),
                session: Some(RevocationKey::session(None, &format!("live-session-{n}"))),
                issued_at: Some(started_secs),
            };
            model
                .accepted
                .lock()
                .unwrap()
                .push((query, "never revoked".into()));
        }
        model
    }

    fn fresh(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A new revocation of `scope`. `subject_for` picks the subject a token's checks
    /// read (a topology may want it in a given bucket); `None` takes any.
    pub fn plan(&self, scope: Scope, rng: &mut Rng, subject: Option<String>) -> Plan {
        let n = self.fresh();
        let subject_name = subject.unwrap_or_else(|| format!("user-{n}"));
        let subject = RevocationKey::subject(None, &subject_name);
        let token = RevocationKey::token(None, &format!("token-{n}"));
        let ttl = Duration::from_secs(60 + rng.next_u64() % 540);
        let mut query = RevocationQuery {
            token,
            subject: Some(subject),
            session: None,
            issued_at: Some(self.started_secs),
        };
        let write = match scope {
            Scope::Token => Write::Token(token, subject),
            Scope::Session => {
                let session = RevocationKey::session(None, &format!("session-{n}"));
                query.session = Some(session);
                Write::Session(session)
            }
            Scope::Subject => Write::Subject(subject, self.started_secs),
            Scope::Global => {
                let until = self.global_base + 1 + self.global_step.fetch_add(1, Ordering::Relaxed);
                query.issued_at = Some(until);
                Write::Global(until)
            }
        };
        Plan {
            scope,
            query,
            ttl,
            write,
        }
    }

    /// Records that `plan`, made at `made`, binds from now on.
    pub fn bind(
        &self,
        plan: &Plan,
        made: Instant,
        round: usize,
        origin: Origin,
        binding: Binding,
        through: &str,
    ) {
        let entry = Bound {
            id: self.fresh(),
            scope: plan.scope,
            query: plan.query,
            expires: made + plan.ttl,
            round,
            origin,
            binding,
            through: through.to_owned(),
            made,
        };
        self.binding.lock().unwrap().push(entry);
    }

    /// The binding revocations that live for at least `margin` more: all, or those of
    /// `round` and a sample of `older` others.
    pub fn live(&self, margin: Duration, round: Option<usize>, older: usize, rng: &mut Rng) -> Vec<Bound> {
        let horizon = Instant::now() + margin;
        let all: Vec<Bound> = self
            .binding
            .lock()
            .unwrap()
            .iter()
            .filter(|entry| entry.expires > horizon)
            .cloned()
            .collect();
        let Some(round) = round else {
            return all;
        };
        let (mut this, mut rest): (Vec<_>, Vec<_>) = all.into_iter().partition(|entry| entry.round >= round);
        rng.shuffle(&mut rest);
        this.extend(rest.into_iter().take(older));
        this
    }
}

/// What a store answered for a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Refused,
    Accepted,
    /// A store error (a layer answers 503): allowed while Redis is down.
    Failed(String),
}

/// Asks `store` about `query`; a store that hangs past the layer's worst case is a
/// failure too.
pub async fn verdict(store: &dyn RevocationStore, query: &RevocationQuery) -> Verdict {
    match tokio::time::timeout(Duration::from_secs(3), store.lookup(query)).await {
        Ok(Ok(answer)) if answer.revoked_by(query.issued_at).is_some() => Verdict::Refused,
        Ok(Ok(_)) => Verdict::Accepted,
        Ok(Err(error)) => Verdict::Failed(error.to_string()),
        Err(_) => Verdict::Failed("no answer within 3 s".into()),
    }
}
