//! Who may connect: SCRAM-SHA-256 passwords for configured users, or (with no users) trust
//! for loopback connections only. Also the parameters every client gets at start.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use datafusion_postgres::pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
};
use datafusion_postgres::pgwire::api::{PidSecretKeyGenerator, RandomPidSecretKeyGenerator};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::Sink;

use crate::error::{AugurError, Result};

const SCRAM_ITERATIONS: usize = 4096;

/// Process ids and cancel keys for every connection of this process (one counter, so two
/// connections never share a pid).
fn pid_generator() -> Arc<RandomPidSecretKeyGenerator> {
    static GENERATOR: std::sync::OnceLock<Arc<RandomPidSecretKeyGenerator>> =
        std::sync::OnceLock::new();
    Arc::clone(GENERATOR.get_or_init(Default::default))
}

/// Users and their passwords, read from files at start (never from the command line, where
/// `ps` would show them).
#[derive(Clone, Default)]
pub struct Users {
    passwords: BTreeMap<String, String>,
}

impl Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.passwords.keys()).finish()
    }
}

impl Users {
    pub fn is_empty(&self) -> bool {
        self.passwords.is_empty()
    }

    pub fn len(&self) -> usize {
        self.passwords.len()
    }

    /// `--user NAME --password-file FILE`: the file's first line is the password.
    pub fn add_from_password_file(&mut self, user: &str, file: &Path) -> Result<()> {
        let text = read(file)?;
        let password = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if password.is_empty() {
            return Err(AugurError::Usage(format!(
                "{}: the password file is empty; write the password on its first line",
                file.display()
            )));
        }
        self.passwords
            .insert(user.to_string(), password.to_string());
        Ok(())
    }

    /// `--users-file FILE`: one `name:password` per line; `#` starts a comment.
    pub fn add_from_users_file(&mut self, file: &Path) -> Result<()> {
        let text = read(file)?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((user, password)) if !user.trim().is_empty() && !password.is_empty() => {
                    self.passwords
                        .insert(user.trim().to_string(), password.to_string());
                }
                _ => {
                    return Err(AugurError::Usage(format!(
                        "{}:{}: expected `name:password`",
                        file.display(),
                        number + 1
                    )));
                }
            }
        }
        Ok(())
    }
}

fn read(file: &Path) -> Result<String> {
    std::fs::read_to_string(file).map_err(|e| {
        AugurError::Usage(format!(
            "cannot read the password file {}: {e}",
            file.display()
        ))
    })
}

/// SCRAM verifiers, computed once at start: a random salt per user.
#[derive(Debug)]
struct Verifiers {
    salted: HashMap<String, (Vec<u8>, Vec<u8>)>,
    /// Answers for unknown users, so they fail exactly like a wrong password does.
    decoy: (Vec<u8>, Vec<u8>),
}

impl Verifiers {
    fn new(users: &Users) -> Verifiers {
        let verifier = |password: &str| {
            let salt = random_bytes();
            let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
            (salt, salted)
        };
        Verifiers {
            salted: users
                .passwords
                .iter()
                .map(|(user, password)| (user.clone(), verifier(password)))
                .collect(),
            decoy: verifier(&String::from_utf8_lossy(&random_bytes())),
        }
    }
}

fn random_bytes() -> Vec<u8> {
    // RandomState is seeded from the OS per instance: enough for salts (not secrets).
    use std::hash::{BuildHasher, Hasher};
    let mut out = Vec::with_capacity(16);
    for _ in 0..2 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(out.len() as u64);
        out.extend_from_slice(&hasher.finish().to_le_bytes());
    }
    out
}

#[async_trait]
impl AuthSource for Verifiers {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let (salt, salted) = login
            .user()
            .and_then(|user| self.salted.get(user))
            .unwrap_or(&self.decoy);
        Ok(Password::new(Some(salt.clone()), salted.clone()))
    }
}

/// What clients are told at start (`server_version`, `DateStyle`, encodings…).
pub fn parameters() -> DefaultServerParameterProvider {
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.server_version = crate::config::SERVER_VERSION.to_string();
    parameters.time_zone = "UTC".into();
    parameters.date_style = "ISO, MDY".into();
    parameters.scram_iterations = SCRAM_ITERATIONS;
    parameters
}

/// Why a connection is turned away at its start message.
#[derive(Debug, Clone)]
pub enum Refusal {
    NotLoopback,
    TooMany(usize),
}

impl Refusal {
    fn error(&self) -> PgWireError {
        let (code, message) = match self {
            Refusal::NotLoopback => (
                "28000",
                "this server has no passwords configured and accepts only connections from \
                 its own machine; start it with --user NAME --password-file FILE to allow others"
                    .to_string(),
            ),
            Refusal::TooMany(limit) => (
                "53300",
                format!(
                    "sorry, too many clients already (--max-connections {limit}); close idle \
                     connections or raise the limit"
                ),
            ),
        };
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "FATAL".into(),
            code.into(),
            message,
        )))
    }
}

/// The start-up conversation of one connection.
pub enum Startup {
    Trust(Arc<DefaultServerParameterProvider>),
    Password(Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>),
    Refuse(Refusal),
}

impl Startup {
    pub fn new(users: &Users, verifiers: &Arc<dyn AuthSource>, refusal: Option<Refusal>) -> Self {
        if let Some(refusal) = refusal {
            return Startup::Refuse(refusal);
        }
        let parameters = Arc::new(parameters());
        if users.is_empty() {
            return Startup::Trust(parameters);
        }
        let mut scram = ScramAuth::new(Arc::clone(verifiers));
        scram.set_iterations(SCRAM_ITERATIONS);
        Startup::Password(Box::new(
            SASLAuthStartupHandler::new(parameters)
                .with_scram(scram)
                .with_pid_secret_key_generator(pid_generator()),
        ))
    }
}

pub fn verifiers(users: &Users) -> Arc<dyn AuthSource> {
    Arc::new(Verifiers::new(users))
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Refuse(refusal) => Err(refusal.error()),
            Startup::Password(sasl) => {
                sasl.on_startup(client, message).await.map_err(|e| match e {
                    // Postgres clients leave SCRAM's user name empty (it is in the startup
                    // message): name the user as PostgreSQL's own message does.
                    PgWireError::InvalidPassword(name) if name.is_empty() => {
                        PgWireError::InvalidPassword(
                            client.metadata().get("user").cloned().unwrap_or_default(),
                        )
                    }
                    e => e,
                })
            }
            Startup::Trust(parameters) => {
                if let PgWireFrontendMessage::Startup(ref startup) = message {
                    protocol_negotiation(client, startup).await?;
                    save_startup_parameters_to_metadata(client, startup);
                    let (pid, key) = pid_generator().generate(client);
                    client.set_pid_and_secret_key(pid, key);
                    finish_authentication(client, parameters.as_ref()).await?;
                }
                Ok(())
            }
        }
    }
}
