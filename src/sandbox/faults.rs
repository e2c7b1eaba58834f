//! Fault injection for the vendor sandboxes: latency, server errors, throttling, hangs,
//! lost responses, hostile answers and full outages, adjustable while the sandbox runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::hostile::HostileState;

/// What the sandbox does wrong, on purpose. Rates are probabilities per request, drawn in
/// this order: outage, server error, throttle, hang, lost response, hostile answer. The same
/// fields are the
/// `provisioner sandbox` flags and the JSON of `PUT /_sandbox/faults`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every request before it is answered, e.g. 200ms.
    #[serde(with = "humantime_serde")]
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub latency: Duration,
    /// Share of requests answered 503 without being processed (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of requests answered 429 with Retry-After, without being processed.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    #[serde(with = "humantime_serde")]
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub retry_after: Duration,
    /// Share of requests that hang for --hang and are then answered 504, unprocessed:
    /// a client with a shorter timeout sees a timeout.
    #[arg(long, default_value_t = 0.0)]
    pub hang_rate: f64,
    #[serde(with = "humantime_serde")]
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub hang: Duration,
    /// Share of requests that ARE processed but whose answer is replaced by a 504: the
    /// nastiest case for idempotency, since the user now exists.
    #[arg(long, default_value_t = 0.0)]
    pub lost_response_rate: f64,
    /// Share of requests given a hostile answer instead of the vendor's: a nesting bomb,
    /// 80 MiB, a slow drip, an endless Retry-After, invalid UTF-8, … (`sandbox::hostile`),
    /// each kind in turn. None is a success, and none creates a user.
    #[arg(long, default_value_t = 0.0)]
    pub hostile_rate: f64,
    /// Every request is answered 503.
    #[arg(long)]
    pub outage: bool,
    /// Served requests are processed at once but answered only after this long: a client
    /// that dies or gives up meanwhile leaves a user it never heard about.
    #[serde(with = "humantime_serde")]
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub response_delay: Duration,
    /// The next this-many requests are answered 503, unprocessed: a deterministic blip
    /// for tests.
    #[arg(long, default_value_t = 0)]
    pub fail_next: u32,
    /// The next this-many requests are answered 429 with Retry-After, unprocessed (after
    /// any `fail_next`): a deterministic throttle for tests.
    #[arg(long, default_value_t = 0)]
    pub throttle_next: u32,
}

/// The live fault settings and the random source, shared by every request.
#[derive(Clone)]
pub struct FaultState {
    faults: Arc<RwLock<Faults>>,
    rng: Arc<Mutex<StdRng>>,
    /// Vendor API requests that arrived, faulted or not: what a test reads to prove a
    /// vendor was, or was not, called.
    requests: Arc<AtomicU64>,
    hostile: Arc<HostileState>,
}

impl FaultState {
    /// `seed` makes a run's sequence of faults repeatable.
    pub fn new(faults: Faults, seed: u64) -> Self {
        Self {
            faults: Arc::new(RwLock::new(faults)),
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
            requests: Arc::new(AtomicU64::new(0)),
            hostile: Arc::new(HostileState::default()),
        }
    }

    /// Vendor API requests received so far (control paths not counted).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// The hostile answers served so far, and those still streaming.
    pub fn hostile(&self) -> &HostileState {
        &self.hostile
    }

    pub fn get(&self) -> Faults {
        self.faults.read().expect("faults lock").clone()
    }

    pub fn set(&self, faults: Faults) {
        *self.faults.write().expect("faults lock") = faults;
    }

    fn roll(&self) -> f64 {
        self.rng.lock().expect("rng lock").random()
    }

    /// Takes one of the `fail_next` failures or `throttle_next` throttles, if any are left,
    /// with the faults in force as it does: a forced throttle answers the Retry-After set
    /// with it, not the one of a request that arrived before the change.
    fn take_forced(&self) -> Option<(Fate, Faults)> {
        let mut f = self.faults.write().expect("faults lock");
        if f.fail_next > 0 {
            f.fail_next -= 1;
            Some((Fate::ServerError, f.clone()))
        } else if f.throttle_next > 0 {
            f.throttle_next -= 1;
            Some((Fate::Throttle, f.clone()))
        } else {
            None
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Fate {
    Outage,
    ServerError,
    Throttle,
    Hang,
    LoseResponse,
    Hostile,
    Serve,
}

fn fate(f: &Faults, roll: f64) -> Fate {
    if f.outage {
        return Fate::Outage;
    }
    let mut edge = 0.0;
    for (rate, fate) in [
        (f.error_rate, Fate::ServerError),
        (f.throttle_rate, Fate::Throttle),
        (f.hang_rate, Fate::Hang),
        (f.lost_response_rate, Fate::LoseResponse),
        (f.hostile_rate, Fate::Hostile),
    ] {
        edge += rate;
        if roll < edge {
            return fate;
        }
    }
    Fate::Serve
}

/// The middleware. Control paths (`/_sandbox/…`) are never faulted.
pub async fn inject(State(state): State<FaultState>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/_sandbox") {
        return next.run(req).await;
    }
    state.requests.fetch_add(1, Ordering::SeqCst);
    let faults = state.get();
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    let (fate, faults) = match state.take_forced() {
        Some((fate, now)) => (fate, now),
        None => (fate(&faults, state.roll()), faults),
    };
    match fate {
        Fate::Outage => (StatusCode::SERVICE_UNAVAILABLE, "sandbox outage").into_response(),
        Fate::ServerError => (StatusCode::SERVICE_UNAVAILABLE, "sandbox injected server error").into_response(),
        Fate::Throttle => Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .header(header::RETRY_AFTER, faults.retry_after.as_secs().max(1).to_string())
            .body(Body::from("sandbox injected throttle"))
            .expect("static response"),
        Fate::Hang => {
            tokio::time::sleep(faults.hang).await;
            (StatusCode::GATEWAY_TIMEOUT, "sandbox injected hang").into_response()
        }
        Fate::LoseResponse => {
            let _processed = next.run(req).await;
            (StatusCode::GATEWAY_TIMEOUT, "sandbox lost the response").into_response()
        }
        Fate::Hostile => super::hostile::answer(&state.hostile, req, next).await,
        Fate::Serve => {
            let response = next.run(req).await;
            if !faults.response_delay.is_zero() {
                tokio::time::sleep(faults.response_delay).await;
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_partition_the_unit_interval_in_order() {
        let f = Faults {
            error_rate: 0.1,
            throttle_rate: 0.05,
            hang_rate: 0.02,
            lost_response_rate: 0.03,
            hostile_rate: 0.2,
            ..Default::default()
        };
        assert_eq!(fate(&f, 0.05), Fate::ServerError);
        assert_eq!(fate(&f, 0.12), Fate::Throttle);
        assert_eq!(fate(&f, 0.16), Fate::Hang);
        assert_eq!(fate(&f, 0.19), Fate::LoseResponse);
        assert_eq!(fate(&f, 0.39), Fate::Hostile);
        assert_eq!(fate(&f, 0.40), Fate::Serve);
        assert_eq!(fate(&Faults { outage: true, ..f }, 0.99), Fate::Outage);
        assert_eq!(fate(&Faults::default(), 0.0), Fate::Serve);
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let draws = |seed| {
            let s = FaultState::new(Faults::default(), seed);
            (0..20).map(|_| s.roll()).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }
}
