//! The rules as each API process holds them: compiled once per change, shared by every send, refreshed by
//! polling the store's change counter (a `SELECT` or `find_one` of one row per poll, whatever the number of
//! rules), so a change made through any process applies on every other within one poll interval.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use comet_store::StoreError;

use crate::engine::{Engine, Message, Verdict};
use crate::metrics::EngineMetrics;
use crate::spec::{ListSpec, RuleSpec};
use crate::storage::ModerationStore;

/// How often a process asks whether the rules changed (the bound is 2 s end to end).
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Compiled {
    /// The change counter the engine was compiled at; `None` before the first load.
    version: Option<i64>,
    engine: Arc<Engine>,
}

/// The moderation data of the app and the engine compiled from it.
#[derive(Debug, Clone)]
pub struct Moderation {
    store: Arc<dyn ModerationStore>,
    current: Arc<RwLock<Compiled>>,
    metrics: Arc<EngineMetrics>,
}

impl Moderation {
    /// A handle with no rules loaded yet: [`Moderation::refresh`] loads them (the API role does before it
    /// serves).
    pub fn new(store: Arc<dyn ModerationStore>) -> Moderation {
        Moderation {
            store,
            current: Arc::new(RwLock::new(Compiled { version: None, engine: Arc::default() })),
            metrics: Arc::default(),
        }
    }

    pub fn store(&self) -> &dyn ModerationStore {
        self.store.as_ref()
    }

    /// The engine compiled at the last refresh.
    pub fn engine(&self) -> Arc<Engine> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current.engine),
            Err(poisoned) => Arc::clone(&poisoned.into_inner().engine),
        }
    }

    /// Checks `message` with the current rules, counting the outcome and the time it took.
    pub fn moderate(&self, engine: &Engine, message: &Message<'_>) -> Verdict {
        let started = std::time::Instant::now();
        let verdict = engine.moderate(message);
        self.metrics.checked(&verdict, started.elapsed());
        verdict
    }

    /// This process's moderation metrics, in Prometheus' text format.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(self.engine().enabled_rules(), self.version())
    }

    fn version(&self) -> Option<i64> {
        match self.current.read() {
            Ok(current) => current.version,
            Err(poisoned) => poisoned.into_inner().version,
        }
    }

    /// Recompiles when the change counter moved; true when it did. The counter is read before the rules, so
    /// a change landing in between is compiled now and again at the next poll, never missed.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let version = self.store.version().await?;
        if self.version() == Some(version) {
            return Ok(false);
        }
        let rules: Vec<RuleSpec> = self.store.rules().await?.into_iter().map(|stored| stored.spec).collect();
        let lists: Vec<ListSpec> = self.store.lists().await?.into_iter().map(|stored| stored.spec).collect();
        let engine = compile_what_compiles(&rules, &lists);
        let mut current = match self.current.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        *current = Compiled { version: Some(version), engine: Arc::new(engine) };
        Ok(true)
    }

    /// Refreshes every `every` until `shutdown` resolves; a failed poll is logged and tried again.
    pub async fn run(self, every: Duration, shutdown: impl Future<Output = ()>) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticks.tick() => {
                    if let Err(error) = self.refresh().await {
                        self.metrics.refresh_failed();
                        tracing::warn!(error = %error, "moderation rules could not be refreshed; the last ones stay");
                    }
                }
            }
        }
    }
}

/// The stored set is checked when it is written, but two processes may each write half of a set that does not
/// hold together (a list deleted while a rule naming it is made): then every rule that compiles on its own
/// runs, and the others are logged.
fn compile_what_compiles(rules: &[RuleSpec], lists: &[ListSpec]) -> Engine {
    if let Ok(engine) = Engine::compile(rules, lists) {
        return engine;
    }
    let usable_lists: Vec<ListSpec> =
        lists.iter().filter(|list| Engine::compile(&[], std::slice::from_ref(list)).is_ok()).cloned().collect();
    let usable_rules: Vec<RuleSpec> = rules
        .iter()
        .filter(|rule| match Engine::compile(std::slice::from_ref(rule), &usable_lists) {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(rule = %rule.id, error = %error, "a stored moderation rule does not compile; it is skipped");
                false
            }
        })
        .cloned()
        .collect();
    Engine::compile(&usable_rules, &usable_lists).unwrap_or_default()
}
