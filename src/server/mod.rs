//! `augur serve`: the Postgres wire protocol over one database, for many clients at once.
//! Each connection gets its own `Session`; every statement takes the session's pipeline.

pub mod args;
mod auth;
mod connection;
mod copy;
mod encode;
mod handlers;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use datafusion_postgres::pgwire::tokio::process_socket;
use tokio::net::{TcpListener, TcpStream};

use crate::database::Database;
use crate::error::{AugurError, Result};
pub use auth::Users;
use connection::Registry;
use handlers::{ConnectionHandlers, Refusal};

/// How `augur serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: String,
    pub users: Users,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Directories remote sessions may read and write files in (besides the database's).
    pub allow_dirs: Vec<PathBuf>,
    pub read_only: bool,
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: "127.0.0.1:5433".into(),
            users: Users::default(),
            tls_cert: None,
            tls_key: None,
            allow_dirs: vec![],
            read_only: false,
            max_connections: 100,
        }
    }
}

/// What every connection shares.
pub(crate) struct Shared {
    pub db: Database,
    pub options: ServeOptions,
    pub connections: Registry,
    pub active: AtomicUsize,
    pub verifiers: Arc<dyn datafusion_postgres::pgwire::api::auth::AuthSource>,
    /// `--allow-dir`s and the database directory.
    pub allowed_dirs: Vec<PathBuf>,
}

/// A server bound to its address, not yet accepting.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tls::Acceptor>,
}

impl Server {
    /// Bind the address and load TLS and users: every configuration error surfaces here,
    /// before a client could connect to a server that is not what was asked for.
    pub async fn bind(db: Database, options: ServeOptions) -> Result<Server> {
        let tls = match (&options.tls_cert, &options.tls_key) {
            (Some(cert), Some(key)) => Some(tls::load(cert, key)?),
            (None, None) => None,
            _ => {
                return Err(AugurError::Usage(
                    "--tls-cert and --tls-key go together: give both files (PEM)".into(),
                ));
            }
        };
        let listener = TcpListener::bind(&options.listen).await.map_err(|e| {
            AugurError::Usage(format!(
                "cannot listen on {}: {e}; pick another address with --listen HOST:PORT",
                options.listen
            ))
        })?;
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                allowed_dirs: options
                    .allow_dirs
                    .iter()
                    .cloned()
                    .chain(db.path().cloned())
                    .collect(),
                db,
                verifiers: auth::verifiers(&options.users),
                options,
                connections: Registry::default(),
                active: AtomicUsize::new(0),
            }),
            tls,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// One line for stderr: where to connect, and how open the server is.
    pub fn banner(&self) -> String {
        let addr = self
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| self.shared.options.listen.clone());
        let options = &self.shared.options;
        let access = if options.users.is_empty() {
            "no passwords configured: only connections from this machine (loopback) are \
             accepted; use --user and --password-file to allow others"
                .to_string()
        } else {
            format!(
                "password authentication (SCRAM-SHA-256) for {} user(s)",
                options.users.len()
            )
        };
        let tls = if self.tls.is_some() {
            "TLS on"
        } else {
            "TLS off"
        };
        let mode = if options.read_only { ", read-only" } else { "" };
        format!(
            "augur: serving {} on {addr} (psql -h {} -p {} -d augur); {access}; {tls}{mode}",
            self.shared.db.describe(),
            addr.rsplit_once(':').map(|(h, _)| h).unwrap_or("127.0.0.1"),
            addr.rsplit_once(':').map(|(_, p)| p).unwrap_or("5433"),
        )
    }

    /// Accept connections until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            let (socket, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    // Out of file descriptors and the like: wait and go on serving.
                    Err(e) => {
                        eprintln!("augur: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => return Ok(()),
            };
            let _ = socket.set_nodelay(true);
            let refusal = self.refusal(&peer);
            let handlers = ConnectionHandlers::new(Arc::clone(&self.shared), refusal);
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let (socket, hang_up) = match watch_hang_up(socket) {
                    Ok(pair) => pair,
                    Err(e) => {
                        eprintln!("augur: connection from {peer} dropped: {e}");
                        return;
                    }
                };
                // A client that goes away mid-statement is noticed here, not when the result
                // is finally written: dropping the connection drops its running statement.
                tokio::select! {
                    _ = process_socket(socket, tls, handlers) => {}
                    _ = hang_up => {}
                }
            });
        }
    }

    fn refusal(&self, peer: &SocketAddr) -> Option<Refusal> {
        (self.shared.options.users.is_empty() && !peer.ip().is_loopback())
            .then_some(Refusal::NotLoopback)
    }
}

/// The socket for pgwire, and a future that resolves when the client has closed its end
/// (end of stream or a reset), watched on a duplicate of the socket.
fn watch_hang_up(
    socket: TcpStream,
) -> std::io::Result<(TcpStream, impl std::future::Future<Output = ()>)> {
    let std_socket = socket.into_std()?;
    let watcher = TcpStream::from_std(std_socket.try_clone()?)?;
    let socket = TcpStream::from_std(std_socket)?;
    let hang_up = async move {
        let mut byte = [0u8; 1];
        loop {
            match watcher.peek(&mut byte).await {
                Ok(0) | Err(_) => return,
                // Bytes are waiting for pgwire (the client is pipelining): look again later.
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
            }
        }
    };
    Ok((socket, hang_up))
}
