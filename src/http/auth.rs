//! Who may use the API when `[http] users_file` is set: every request needs HTTP Basic
//! credentials of a user in the file (401 with `WWW-Authenticate: Basic realm="forewarn"`
//! otherwise); a viewer may read (GET), an action (any other method) needs an operator and
//! a CSRF token in the `X-CSRF-Token` header. `GET /csrf` answers a token for the caller,
//! and every answer to an operator's GET carries one in the same header; a token is an
//! HMAC of the user and the time under a key drawn at start, so it needs no storage, dies
//! with the process and is valid for [`CSRF_LIFETIME`].
//!
//! Wrong credentials are counted (`http_auth_failures`), logged with the client's address
//! and the user name tried (never the password), and limited per client address: after
//! [`MAX_FAILURES`] within [`FAILURE_WINDOW`] that address gets 429 for
//! [`BLOCK_TIME`], right credentials included, so guessing costs a minute per few tries.
//!
//! An argon2 verification costs tens of milliseconds of a core by design, so a check that
//! succeeded is remembered for [`CACHE_TIME`] under an HMAC of the `Authorization` header
//! (keyed with the process's key, so the cache holds neither the password nor anything a
//! dictionary could be run against offline without that key).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use ring::hmac;

use crate::base::secret::Secret;
use crate::config::users::{self, Role, User};
use crate::stats::Stats;

/// Failures of one client address that start a block.
pub const MAX_FAILURES: u32 = 5;
/// The window the failures are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a blocked address gets 429.
pub const BLOCK_TIME: Duration = Duration::from_secs(60);
/// How long a successful verification is remembered.
pub const CACHE_TIME: Duration = Duration::from_secs(60);
/// How long a CSRF token is accepted. Why: long enough for a page left open over a
/// shift, short enough that a leaked token soon stops working.
pub const CSRF_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The header of CSRF tokens, both ways.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Entries kept of cached credentials and of failing addresses. Why: both maps are filled
/// by clients; past this the oldest entries go, so memory stays bounded.
const MAX_ENTRIES: usize = 4096;

/// The client's address, put into each request's extensions by the connection.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The authenticated user, put into each request's extensions for the handlers (the
/// author of a label).
#[derive(Debug, Clone)]
pub struct Caller(pub String);

/// Why the API cannot start with `users_file`.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("{0}")]
    Users(String),
    #[error("no random numbers for the API's key")]
    Random,
}

#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    count: u32,
    since: Option<Instant>,
    blocked_until: Option<Instant>,
}

/// The users, the process's key, the cache of verified credentials and the failures.
pub struct Auth {
    users: HashMap<String, User>,
    key: hmac::Key,
    verified: Mutex<HashMap<Vec<u8>, (String, Role, Instant)>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    stats: Arc<Stats>,
}

impl Auth {
    /// The users of `file`, read once; a problem stops the agent at start-up.
    pub fn load(file: &std::path::Path, stats: Arc<Stats>) -> Result<Auth, AuthSetupError> {
        let users = users::parse(file).map_err(|problems| {
            let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            AuthSetupError::Users(text.join("; "))
        })?;
        Auth::new(users, stats)
    }

    pub fn new(users: Vec<User>, stats: Arc<Stats>) -> Result<Auth, AuthSetupError> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .map_err(|_| AuthSetupError::Random)?;
        Ok(Auth {
            users: users.into_iter().map(|u| (u.name.clone(), u)).collect(),
            key,
            verified: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            stats,
        })
    }

    /// A CSRF token for `user` made at `at` (seconds since the epoch).
    fn csrf_token(&self, user: &str, at: u64) -> String {
        let tag = hmac::sign(&self.key, format!("csrf\0{user}\0{at}").as_bytes());
        format!("{at}.{}", hex(tag.as_ref()))
    }

    /// Whether `token` was made for `user` by this process within [`CSRF_LIFETIME`].
    fn csrf_valid(&self, user: &str, token: &str) -> bool {
        let Some((at, tag)) = token.split_once('.') else {
            return false;
        };
        let (Ok(at), Some(tag)) = (at.parse::<u64>(), unhex(tag)) else {
            return false;
        };
        let age = now_secs().saturating_sub(at);
        age <= CSRF_LIFETIME.as_secs()
            && hmac::verify(&self.key, format!("csrf\0{user}\0{at}").as_bytes(), &tag).is_ok()
    }

    /// 429 time left for `ip`, if it is blocked.
    fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&ip)?
            .blocked_until
            .and_then(|t| t.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Counts and logs one failure of `ip` trying `user`.
    fn failed(&self, ip: IpAddr, user: &str, now: Instant) {
        self.stats
            .http_auth_failures
            .event(|total| tracing::warn!(client = %ip, user, total, "http: wrong credentials"));
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES && !map.contains_key(&ip) {
            map.retain(|_, f| f.since.is_some_and(|s| now.duration_since(s) < FAILURE_WINDOW));
        }
        let f = map.entry(ip).or_default();
        if f.since.is_none_or(|s| now.duration_since(s) > FAILURE_WINDOW) {
            *f = Failures {
                count: 0,
                since: Some(now),
                blocked_until: None,
            };
        }
        f.count += 1;
        if f.count >= MAX_FAILURES {
            f.blocked_until = Some(now + BLOCK_TIME);
            tracing::warn!(client = %ip, failures = f.count, "http: too many wrong credentials; refusing this client for a minute");
        }
    }

    /// The user and role of a `Basic` header, from the cache or by verifying.
    async fn identify(self: &Arc<Self>, header: &HeaderValue) -> Result<(String, Role), Option<String>> {
        let digest = hmac::sign(&self.key, header.as_bytes()).as_ref().to_vec();
        let now = Instant::now();
        if let Some((user, role, until)) = self.verified.lock().unwrap_or_else(|p| p.into_inner()).get(&digest) {
            if *until > now {
                return Ok((user.clone(), *role));
            }
        }
        let (name, password) = basic_credentials(header).ok_or(None)?;
        let Some(user) = self.users.get(&name).cloned() else {
            // Same cost as a known user, so timing does not tell which names exist.
            let _ = tokio::task::spawn_blocking(move || users::verify(&Secret::new(DUMMY_HASH), b"x")).await;
            return Err(Some(name));
        };
        let hash = user.hash.clone();
        let ok = tokio::task::spawn_blocking(move || users::verify(&hash, password.expose().as_bytes()))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(Some(name));
        }
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, (_, _, until)| *until > now);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(digest, (user.name.clone(), user.role, now + CACHE_TIME));
        Ok((user.name, user.role))
    }
}

/// A valid argon2id hash of nothing anyone uses, verified for unknown user names.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2b4T3SHzJEGHr2JX6hVZrqkwUKOylnx5ldAPWSYVUM4";

/// `Basic base64(name:password)` as name and password.
fn basic_credentials(header: &HeaderValue) -> Option<(String, Secret)> {
    let text = header.to_str().ok()?;
    let (scheme, data) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(data.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_string(), Secret::new(password)))
}

/// The middleware: authenticates, authorises, answers `GET /csrf`.
pub async fn require(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<PeerAddr>()
        .map(|p| p.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let now = Instant::now();
    if let Some(left) = auth.blocked(ip, now) {
        let mut r = plain(
            StatusCode::TOO_MANY_REQUESTS,
            "too many wrong credentials; try again later\n",
        );
        if let Ok(v) = HeaderValue::from_str(&left.as_secs().max(1).to_string()) {
            r.headers_mut().insert(RETRY_AFTER, v);
        }
        return r;
    }
    let Some(header) = req.headers().get(AUTHORIZATION).cloned() else {
        return unauthorized();
    };
    let (user, role) = match auth.identify(&header).await {
        Ok(who) => who,
        Err(tried) => {
            auth.failed(ip, tried.as_deref().unwrap_or("<unreadable>"), now);
            return unauthorized();
        }
    };
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    if read && req.uri().path() == "/csrf" {
        return plain(StatusCode::OK, format!("{}\n", auth.csrf_token(&user, now_secs())));
    }
    if !read {
        if role != Role::Operator {
            return plain(StatusCode::FORBIDDEN, "actions need an operator\n");
        }
        let token = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !auth.csrf_valid(&user, token) {
            return plain(
                StatusCode::FORBIDDEN,
                "missing or stale CSRF token: GET /csrf and send it as X-CSRF-Token\n",
            );
        }
    }
    let mut req = req;
    req.extensions_mut().insert(Caller(user.clone()));
    let mut reply = next.run(req).await;
    if read && role == Role::Operator {
        if let Ok(v) = HeaderValue::from_str(&auth.csrf_token(&user, now_secs())) {
            reply.headers_mut().insert(CSRF_HEADER, v);
        }
    }
    reply
}

fn unauthorized() -> Response {
    let mut r = plain(StatusCode::UNAUTHORIZED, "credentials needed\n");
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"forewarn\""));
    r
}

fn plain(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [(CONTENT_TYPE, "text/plain; charset=utf-8")], body.into()).into_response()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(Vec::new(), Arc::new(Stats::default())).unwrap()
    }

    #[test]
    fn csrf_tokens_bind_user_and_time() {
        let a = auth();
        let t = a.csrf_token("ann", now_secs());
        assert!(a.csrf_valid("ann", &t));
        assert!(!a.csrf_valid("bob", &t));
        assert!(!a.csrf_valid("ann", &a.csrf_token("ann", now_secs() - CSRF_LIFETIME.as_secs() - 5)));
        assert!(!a.csrf_valid("ann", "12.zz"));
        assert!(!auth().csrf_valid("ann", &t), "another process's key");
    }

    #[test]
    fn failures_block_after_the_limit() {
        let a = auth();
        let ip = IpAddr::from([10, 0, 0, 1]);
        let now = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            a.failed(ip, "ann", now);
        }
        assert!(a.blocked(ip, now).is_none());
        a.failed(ip, "ann", now);
        assert!(a.blocked(ip, now).is_some());
        assert!(a.blocked(ip, now + BLOCK_TIME).is_none());
        assert!(a.blocked(IpAddr::from([10, 0, 0, 2]), now).is_none());
        assert_eq!(a.stats.http_auth_failures.get(), u64::from(MAX_FAILURES));
    }

    #[test]
    fn basic_header() {
        let h = HeaderValue::from_static("Basic YW5uOnA6dw==");
        let (name, pw) = basic_credentials(&h).unwrap();
        assert_eq!((name.as_str(), pw.expose()), ("ann", "p:w"));
        assert!(basic_credentials(&HeaderValue::from_static("Bearer x")).is_none());
    }

    #[test]
    fn dummy_hash_parses() {
        assert!(!users::verify(&Secret::new(DUMMY_HASH), b"x"));
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
