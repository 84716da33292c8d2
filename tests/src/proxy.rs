//! A loopback HTTP proxy in front of the real S3 server that records every
//! request and can inject faults: answer 503, or drop the connection
//! without answering (a reset), for the next N requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A fault to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer `503 SlowDown` without forwarding.
    SlowDown,
    /// Read the request, then close the connection without an answer.
    Reset,
}

/// One request as the proxy saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// The status returned, or `None` for an injected reset.
    pub status: Option<u16>,
    /// Request headers, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// HEAD of an object (not of the bucket).
    pub fn is_head_object(&self) -> bool {
        self.method == "HEAD"
            && self
                .target
                .trim_start_matches('/')
                .split_once('/')
                .is_some_and(|(_, k)| !k.is_empty())
    }
    pub fn is_list(&self) -> bool {
        self.method == "GET" && (self.target.contains("list-type=2") || self.target.contains("prefix="))
    }
}

#[derive(Default)]
struct State {
    fault: Mutex<Option<Fault>>,
    remaining: AtomicU32,
    seen: Mutex<Vec<Seen>>,
}

type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// The running proxy; stops when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 forwarding to `upstream_port` on 127.0.0.1.
    /// Must be called inside a tokio runtime.
    pub async fn start(upstream_port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        forward(req, st.clone(), client.clone(), upstream_port)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Injects `fault` into the next `count` requests.
    pub fn inject(&self, fault: Fault, count: u32) {
        *self.state.fault.lock().unwrap() = Some(fault);
        self.state.remaining.store(count, Ordering::SeqCst);
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear(&self) {
        self.state.seen.lock().unwrap().clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
struct InjectedReset;
impl std::fmt::Display for InjectedReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected reset")
    }
}
impl std::error::Error for InjectedReset {}

async fn forward(
    req: Request<Incoming>,
    st: Arc<State>,
    client: Client<HttpConnector, Incoming>,
    upstream_port: u16,
) -> Result<Response<Body>, Box<dyn std::error::Error + Send + Sync>> {
    let method = req.method().to_string();
    let target = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let fault = take_fault(&st);
    let record = |status: Option<u16>| {
        st.seen.lock().unwrap().push(Seen {
            method: method.clone(),
            target: target.clone(),
            status,
            headers: headers.clone(),
        })
    };
    match fault {
        Some(Fault::Reset) => {
            // Drain the body first so the client has sent everything: the
            // request reached the server, and only the answer is lost.
            let _ = req.into_body().collect().await;
            record(None);
            return Err(Box::new(InjectedReset));
        }
        Some(Fault::SlowDown) => {
            let _ = req.into_body().collect().await;
            record(Some(503));
            let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>";
            let resp = Response::builder().status(StatusCode::SERVICE_UNAVAILABLE).body(
                Full::new(Bytes::from(body))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )?;
            return Ok(resp);
        }
        None => {}
    }
    let (mut parts, body) = req.into_parts();
    parts.uri = format!("http://127.0.0.1:{upstream_port}{target}").parse()?;
    let resp = client.request(Request::from_parts(parts, body)).await?;
    record(Some(resp.status().as_u16()));
    Ok(resp.map(|b| b.boxed_unsync()))
}

fn take_fault(st: &State) -> Option<Fault> {
    let fault = *st.fault.lock().unwrap();
    fault?;
    st.remaining
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .ok()
        .and(fault)
}
