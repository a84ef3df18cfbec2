//! Name resolution and TCP connecting for the HTTP clients (Stream's and the OTLP exporter's):
//! hickory, which reads `/etc/resolv.conf` itself, so the static `FROM scratch` image resolves
//! without NSS.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::Service;

/// The TCP connector both clients start from: hickory DNS, `https://` allowed through (TLS is
/// layered on top), no Nagle, and `connect_timeout` per connection. Neither reads
/// `HTTP_PROXY`/`HTTPS_PROXY`.
pub(crate) fn http_connector(connect_timeout: std::time::Duration) -> HttpConnector<Dns> {
    let mut http = HttpConnector::new_with_resolver(Dns::default());
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http
}

/// The error type hyper-util's connectors take.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// DNS through hickory, which reads `/etc/resolv.conf` itself: no NSS, so the static
/// `FROM scratch` image resolves. Built on first use, inside the runtime.
#[derive(Clone, Default)]
pub(crate) struct Dns(Arc<OnceLock<hickory_resolver::TokioResolver>>);

impl Dns {
    fn resolver(&self) -> Result<&hickory_resolver::TokioResolver, BoxError> {
        if let Some(r) = self.0.get() {
            return Ok(r);
        }
        let mut builder = hickory_resolver::TokioResolver::builder_tokio()?;
        builder.options_mut().ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
        Ok(self.0.get_or_init(|| builder.build()))
    }
}

impl Service<Name> for Dns {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let dns = self.clone();
        Box::pin(async move {
            // An address needs no lookup (loopback upstreams, the emulator, tests).
            if let Ok(ip) = name.as_str().parse::<std::net::IpAddr>() {
                return Ok(vec![SocketAddr::new(ip, 0)].into_iter());
            }
            let found = dns.resolver()?.lookup_ip(name.as_str()).await?;
            Ok(found
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 0))
                .collect::<Vec<_>>()
                .into_iter())
        })
    }
}
