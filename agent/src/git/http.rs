//! HTTP(S) smart-protocol transport: gix's reqwest backend with our own rustls (ring)
//! configuration (custom CA), an `Authorization` header for token or basic auth, and
//! byte counting around every request and response.

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use gix::protocol::transport::client::blocking_io::http::{
    self as gix_http, GetResponse, Http, PostBodyDataKind, PostResponse,
};
use gix::protocol::transport::Protocol;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use siteboot_wire::assignment::GitAuth;

use super::counting::{Counter, CountingRead, CountingWrite};
use super::error::FetchError;

/// The reqwest-backed HTTP client, counting bytes.
pub(crate) struct CountingHttp<H> {
    inner: H,
    counter: Counter,
}

fn request_size<'a>(method: &str, url: &str, headers: impl Iterator<Item = &'a String>) -> usize {
    // Request line plus headers plus the blank line, as on an HTTP/1.1 wire.
    method.len() + url.len() + 12 + headers.map(|h| h.len() + 2).sum::<usize>() + 2
}

impl<H: Http> Http for CountingHttp<H> {
    type Headers = CountingRead<H::Headers>;
    type ResponseBody = CountingRead<H::ResponseBody>;
    type PostBody = CountingWrite<H::PostBody>;

    fn get(
        &mut self,
        url: &str,
        base_url: &str,
        headers: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> gix::Result<GetResponse<Self::Headers, Self::ResponseBody>> {
        let headers: Vec<String> = headers.into_iter().map(|h| h.as_ref().to_owned()).collect();
        self.counter
            .add_sent(request_size("GET", url, headers.iter()));
        let res = self.inner.get(url, base_url, headers.iter())?;
        Ok(GetResponse {
            headers: CountingRead::new(res.headers, self.counter.clone()),
            body: CountingRead::new(res.body, self.counter.clone()),
        })
    }

    fn post(
        &mut self,
        url: &str,
        base_url: &str,
        headers: impl IntoIterator<Item = impl AsRef<str>>,
        body: PostBodyDataKind,
    ) -> gix::Result<PostResponse<Self::Headers, Self::ResponseBody, Self::PostBody>> {
        let headers: Vec<String> = headers.into_iter().map(|h| h.as_ref().to_owned()).collect();
        self.counter
            .add_sent(request_size("POST", url, headers.iter()));
        let res = self.inner.post(url, base_url, headers.iter(), body)?;
        Ok(PostResponse {
            post_body: CountingWrite::new(res.post_body, self.counter.clone()),
            headers: CountingRead::new(res.headers, self.counter.clone()),
            body: CountingRead::new(res.body, self.counter.clone()),
        })
    }

    fn configure(&mut self, config: &dyn Any) -> gix::Result<()> {
        self.inner.configure(config)
    }

    fn redirected_base_url(&self) -> Option<String> {
        self.inner.redirected_base_url()
    }
}

/// A ready HTTP transport and the options gix must configure it with.
pub(crate) struct HttpParts {
    pub transport: gix_http::Transport<CountingHttp<gix_http::reqwest::Remote>>,
    pub options: Box<dyn Any>,
}

/// Build the transport for `url` (already parsed, http or https) with `auth`.
pub(crate) fn connect(
    url: gix::Url,
    redacted: &str,
    auth: Option<&GitAuth>,
    counter: &Counter,
) -> Result<HttpParts, FetchError> {
    let https = url.scheme == gix::url::Scheme::Https;
    let (header, ca_pem) = match auth {
        None => (None, None),
        Some(GitAuth::Token { token, ca_pem }) => (
            Some(format!("Bearer {}", token.expose())),
            ca_pem.as_deref(),
        ),
        Some(GitAuth::Basic {
            username,
            password,
            ca_pem,
        }) => {
            let pair = format!("{username}:{}", password.expose());
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            (Some(format!("Basic {encoded}")), ca_pem.as_deref())
        }
        Some(GitAuth::Ca { ca_pem }) => (None, Some(ca_pem.as_str())),
        Some(GitAuth::Ssh { .. }) => {
            return Err(FetchError::Config(format!(
                "{redacted} is an http(s) url but the credential is an ssh deploy key"
            )))
        }
    };
    if header.is_some() && !https {
        return Err(FetchError::Config(format!(
            "refusing to send credentials over plain http to {redacted}; use https"
        )));
    }
    let tls = tls_config(ca_pem).map_err(|reason| FetchError::Tls {
        url: redacted.to_owned(),
        reason,
    })?;
    let header = header
        .map(|h| {
            let mut value = HeaderValue::from_str(&h)
                .map_err(|_| FetchError::Config("credential contains invalid characters".into()))?;
            value.set_sensitive(true);
            Ok::<_, FetchError>(value)
        })
        .transpose()?;

    let backend = gix_http::reqwest::Options {
        configure_client: Some(Box::new(move |builder| {
            Ok(builder
                .tls_backend_preconfigured(tls.clone())
                .connect_timeout(Duration::from_secs(15))
                .timeout(Duration::from_secs(600)))
        })),
        // Only with credentials: a configured header makes gix refuse redirects.
        configure_request: header.map(|value| {
            Box::new(move |req: &mut reqwest::blocking::Request| {
                req.headers_mut().insert(AUTHORIZATION, value.clone());
                Ok(())
            }) as Box<gix_http::reqwest::ConfigureRequestFn>
        }),
    };
    let options = gix_http::Options {
        user_agent: Some(concat!("siteboot-agent/", env!("CARGO_PKG_VERSION")).into()),
        backend: Some(Arc::new(Mutex::new(backend))),
        ..Default::default()
    };
    let http = CountingHttp {
        inner: gix_http::reqwest::Remote::default(),
        counter: counter.clone(),
    };
    Ok(HttpParts {
        transport: gix_http::Transport::new_http(http, url, Protocol::V2, false),
        options: Box::new(options),
    })
}

/// rustls with the ring provider; roots from the assignment's CA bundle, else the system.
fn tls_config(ca_pem: Option<&str>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| format!("ca bundle is not valid pem: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("ca bundle holds an unusable certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err("ca bundle holds no certificate".into());
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                roots.add(cert).ok();
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
