//! How the emulator reaches out: the connector its webhook sender uses (the embedder may give
//! its own, see [`super::EmulatorState::set_webhook_connector`]), and how long it waits.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

/// How long the emulator waits for the gateway's answer: longer than Stream's 3 s, so a
/// gateway's own timeout shows.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A connector for the webhook client: a plain TCP connection to the URL's host and port.
pub type Connector = BoxCloneSyncService<
    http::Uri,
    TokioIo<tokio::net::TcpStream>,
    Box<dyn std::error::Error + std::marker::Send + Sync>,
>;

/// hyper-util's connector with the system resolver, connecting within [`SEND_TIMEOUT`].
pub fn plain_connector() -> Connector {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(SEND_TIMEOUT));
    BoxCloneSyncService::new(http.map_err(Into::into))
}
