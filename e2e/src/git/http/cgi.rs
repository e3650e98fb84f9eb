//! One HTTP request run through `git http-backend` as a CGI (RFC 3875): headers become
//! environment variables, the request body streams into the CGI's stdin, and its stdout
//! (CGI header block, blank line, body) becomes the response.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;

use futures::StreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

use super::{authorize, RequestRecord, State};

/// Path of Debian's git-http-backend.
pub const HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// The request facts a CGI environment is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgiRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub content_length: Option<String>,
    pub content_encoding: Option<String>,
    pub git_protocol: Option<String>,
    pub remote_user: Option<String>,
    pub remote_addr: String,
    pub server_port: u16,
}

/// The CGI variables (plus git's own) for one request. Pure.
pub fn cgi_env(req: &CgiRequest, project_root: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("GIT_PROJECT_ROOT".into(), project_root.into()),
        ("GIT_HTTP_EXPORT_ALL".into(), "1".into()),
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
        ("SERVER_SOFTWARE".into(), "siteboot-e2e".into()),
        ("SERVER_NAME".into(), "127.0.0.1".into()),
        ("SERVER_PORT".into(), req.server_port.to_string()),
        ("SCRIPT_NAME".into(), String::new()),
        ("REQUEST_METHOD".into(), req.method.clone()),
        ("PATH_INFO".into(), req.path.clone()),
        ("QUERY_STRING".into(), req.query.clone()),
        ("REMOTE_ADDR".into(), req.remote_addr.clone()),
    ];
    let optional = [
        ("CONTENT_TYPE", &req.content_type),
        ("CONTENT_LENGTH", &req.content_length),
        ("HTTP_CONTENT_ENCODING", &req.content_encoding),
        ("HTTP_GIT_PROTOCOL", &req.git_protocol),
        ("REMOTE_USER", &req.remote_user),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            env.push((key.into(), v.clone()));
        }
    }
    if req.remote_user.is_some() {
        env.push(("AUTH_TYPE".into(), "Basic".into()));
    }
    env
}

/// Parses a CGI header block: the `Status:` line (default 200) and the other headers.
pub fn parse_cgi_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut status = 200;
    let mut headers = Vec::new();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("status") {
            if let Some(code) = value.split_whitespace().next().and_then(|c| c.parse().ok()) {
                status = code;
            }
        } else {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    (status, headers)
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body.to_owned()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Serves one request; never fails at the HTTP level (errors become 5xx responses).
pub(crate) async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let cgi = CgiRequest {
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or("").to_owned(),
        content_type: header(&req, "content-type"),
        content_length: header(&req, "content-length"),
        content_encoding: header(&req, "content-encoding"),
        git_protocol: header(&req, "git-protocol"),
        remote_user: None,
        remote_addr: peer.ip().to_string(),
        server_port: state.port,
    };
    let mut record = RequestRecord {
        method: cgi.method.clone(),
        path: cgi.path.clone(),
        query: cgi.query.clone(),
        status: 0,
        user: None,
        git_protocol: cgi.git_protocol.clone(),
        content_encoding: cgi.content_encoding.clone(),
    };
    let user = match authorize(&state.auth, header(&req, "authorization").as_deref()) {
        Ok(user) => user,
        Err(challenge) => {
            let mut resp = text(StatusCode::UNAUTHORIZED, "authentication required\n");
            resp.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static(challenge),
            );
            record.status = 401;
            state.record(record);
            return Ok(resp);
        }
    };
    record.user = user.clone();
    let cgi = CgiRequest {
        remote_user: user.filter(|u| u != "bearer"),
        ..cgi
    };
    match run_cgi(req, &state, &cgi).await {
        Ok((resp, status)) => {
            record.status = status;
            state.record(record);
            Ok(resp)
        }
        Err(e) => {
            state.log_line(&format!("error: git http-backend: {e}"));
            record.status = 502;
            state.record(record);
            Ok(text(StatusCode::BAD_GATEWAY, "git http-backend failed\n"))
        }
    }
}

async fn run_cgi(
    req: Request<Incoming>,
    state: &State,
    cgi: &CgiRequest,
) -> std::io::Result<(Response<Body>, u16)> {
    let stderr = state
        .log
        .lock()
        .map_err(|_| std::io::Error::other("log lock"))?
        .try_clone()?;
    let mut cmd = tokio::process::Command::new(HTTP_BACKEND);
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .envs(crate::git::isolated_env(&state.home))
        .envs(cgi_env(cgi, &state.base.display().to_string()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;

    // Stream the request body into the CGI; closing stdin marks its end.
    let mut body = req.into_body();
    tokio::spawn(async move {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(data) = frame.into_data() {
                if stdin.write_all(&data).await.is_err() {
                    break;
                }
            }
        }
        let _ = stdin.shutdown().await;
    });

    let mut reader = BufReader::new(stdout);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line.trim_end().is_empty() {
            break;
        }
        head.push_str(&line);
    }
    let (status, headers) = parse_cgi_head(&head);
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let stream = futures::stream::unfold(Some((reader, child)), |state| async move {
        let (mut reader, mut child) = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => {
                // Reap the CGI; it has closed stdout so it is exiting.
                let _ = child.wait().await;
                None
            }
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), Some((reader, child))))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let body = StreamBody::new(stream.boxed()).boxed_unsync();
    let resp = builder.body(body).map_err(std::io::Error::other)?;
    Ok((resp, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (CGI header block, expected status, expected headers)
    type HeadCase<'a> = (&'a str, u16, &'a [(&'a str, &'a str)]);

    #[test]
    fn cgi_head_table() {
        let cases: &[HeadCase] = &[
            ("", 200, &[]),
            (
                "Content-Type: application/x-git-upload-pack-advertisement\r\nCache-Control: no-cache\r\n",
                200,
                &[
                    ("Content-Type", "application/x-git-upload-pack-advertisement"),
                    ("Cache-Control", "no-cache"),
                ],
            ),
            ("Status: 404 Not Found\r\nExpires: Fri, 01 Jan 1980\r\n", 404, &[("Expires", "Fri, 01 Jan 1980")]),
            ("status: 403\n", 403, &[]),
        ];
        for (head, status, headers) in cases {
            let (got_status, got_headers) = parse_cgi_head(head);
            assert_eq!(got_status, *status, "{head:?}");
            let got: Vec<(&str, &str)> = got_headers
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            assert_eq!(got, headers.to_vec(), "{head:?}");
        }
    }

    #[test]
    fn cgi_env_carries_request_facts() {
        let req = CgiRequest {
            method: "POST".into(),
            path: "/fleet.git/git-upload-pack".into(),
            query: String::new(),
            content_type: Some("application/x-git-upload-pack-request".into()),
            content_length: None,
            content_encoding: Some("gzip".into()),
            git_protocol: Some("version=2".into()),
            remote_user: Some("fleet".into()),
            remote_addr: "127.0.0.1".into(),
            server_port: 20001,
        };
        let env = cgi_env(&req, "/srv/repos");
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("GIT_PROJECT_ROOT"), Some("/srv/repos"));
        assert_eq!(get("GIT_HTTP_EXPORT_ALL"), Some("1"));
        assert_eq!(get("PATH_INFO"), Some("/fleet.git/git-upload-pack"));
        assert_eq!(get("REQUEST_METHOD"), Some("POST"));
        assert_eq!(get("HTTP_CONTENT_ENCODING"), Some("gzip"));
        assert_eq!(get("HTTP_GIT_PROTOCOL"), Some("version=2"));
        assert_eq!(get("REMOTE_USER"), Some("fleet"));
        assert_eq!(get("CONTENT_LENGTH"), None, "chunked bodies have no length");
        assert_eq!(get("QUERY_STRING"), Some(""));
    }
}
