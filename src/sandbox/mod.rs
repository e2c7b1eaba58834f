//! Simulators of the vendor APIs, served over HTTP on the vendors' real paths, with fault
//! injection and a control API (`/_sandbox/faults`) that tests and the chaos suite drive.

pub mod faults;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

pub use faults::{FaultState, Faults};

/// Wraps vendor routers with the fault layer and adds `GET`/`PUT /_sandbox/faults`.
pub fn with_faults(router: Router, state: FaultState) -> Router {
    let control = Router::new().route("/_sandbox/faults", get(get_faults).put(put_faults)).with_state(state.clone());
    router.merge(control).layer(axum::middleware::from_fn_with_state(state, faults::inject))
}

async fn get_faults(State(state): State<FaultState>) -> Json<Faults> {
    Json(state.get())
}

async fn put_faults(State(state): State<FaultState>, Json(faults): Json<Faults>) -> Json<Faults> {
    state.set(faults);
    Json(state.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn faults_apply_to_vendor_paths_and_can_be_changed_live() {
        let state = FaultState::new(Faults::default(), 1);
        let base = serve(with_faults(Router::new().route("/api.php", get(|| async { "ok" })), state.clone())).await;
        let http = reqwest::Client::new();
        let status = |path: &'static str| {
            let (http, base) = (http.clone(), base.clone());
            async move { http.get(format!("{base}{path}")).send().await.unwrap().status().as_u16() }
        };
        assert_eq!(status("/api.php").await, 200);

        let put = http
            .put(format!("{base}/_sandbox/faults"))
            .json(&serde_json::json!({"fail_next": 2, "retry_after": "3s"}))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 200);
        assert_eq!(status("/api.php").await, 503);
        assert_eq!(status("/api.php").await, 503);
        assert_eq!(status("/api.php").await, 200, "only the next two requests fail");

        state.set(Faults { throttle_rate: 1.0, retry_after: std::time::Duration::from_secs(3), ..Faults::default() });
        let r = http.get(format!("{base}/api.php")).send().await.unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "3");

        state.set(Faults { outage: true, ..Faults::default() });
        assert_eq!(status("/api.php").await, 503);
        assert_eq!(status("/_sandbox/faults").await, 200, "the control API is never faulted");
    }
}
