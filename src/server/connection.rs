//! The connections a server has: each one's `Session` (kept in pgwire's per-connection
//! store), found by its (pid, secret key) when a CancelRequest arrives on another socket.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use datafusion_postgres::pgwire::api::ClientInfo;

use super::Shared;
use crate::error::Result;
use crate::session::Session;

type Key = (i32, Vec<u8>);

#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<Key, Session>>,
}

impl Registry {
    pub fn cancel(&self, pid: i32, secret: &[u8]) {
        let session = self
            .sessions
            .lock()
            .ok()
            .and_then(|s| s.get(&(pid, secret.to_vec())).cloned());
        if let Some(session) = session {
            session.cancel_running();
        }
    }
}

/// One client's state, dropped with the connection (which unregisters it).
pub struct Connection {
    pub session: Session,
    /// The `COPY … FROM STDIN` the client is sending data for.
    pub copy_in: tokio::sync::Mutex<Option<crate::session::CopyIn>>,
    shared: Arc<Shared>,
    key: Key,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Ok(mut sessions) = self.shared.connections.sessions.lock() {
            sessions.remove(&self.key);
        }
    }
}

/// The connection's state, made at its first statement.
pub fn of<C: ClientInfo>(shared: &Arc<Shared>, client: &C) -> Result<Arc<Connection>> {
    if let Some(connection) = client.session_extensions().get::<Connection>() {
        return Ok(connection);
    }
    let session = Session::sandboxed(shared.db.clone(), &shared.allowed_dirs)?;
    if shared.options.read_only {
        session.set_read_only();
    }
    if let Some(user) = client.metadata().get("user") {
        session.set_user(user);
    }
    let (pid, secret) = client.pid_and_secret_key();
    let key = (pid, secret.to_bytes().to_vec());
    if let Ok(mut sessions) = shared.connections.sessions.lock() {
        sessions.insert(key.clone(), session.clone());
    }
    let connection = Connection {
        session,
        copy_in: Default::default(),
        shared: Arc::clone(shared),
        key,
    };
    Ok(client
        .session_extensions()
        .get_or_insert_with(move || connection))
}

/// A place among `--max-connections`, held for as long as the connection lives.
pub struct Slot(Arc<Shared>);

impl Slot {
    pub fn take(shared: &Arc<Shared>) -> Option<Slot> {
        let before = shared.active.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(Arc::clone(shared));
        (before < shared.options.max_connections).then_some(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}
