//! pgwire's handlers for one connection: simple and extended query over the connection's
//! `Session` (our parser first, always), start-up and authentication, and cancel requests.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use datafusion_postgres::pgwire::api::auth::AuthSource;
use datafusion_postgres::pgwire::api::cancel::CancelHandler;
use datafusion_postgres::pgwire::api::copy as pg_copy;
use datafusion_postgres::pgwire::api::copy::CopyHandler;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{
    ExtendedQueryHandler, SimpleQueryHandler, send_execution_response, send_query_response,
    send_ready_for_query,
};
use datafusion_postgres::pgwire::api::results::{CopyResponse, FieldInfo, Response, Tag};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, DEFAULT_NAME, NoopHandler, PgWireConnectionState,
    PgWireServerHandlers, Type,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::messages::cancel::CancelRequest;
use datafusion_postgres::pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use datafusion_postgres::pgwire::messages::extendedquery::Sync as PgSync;
use datafusion_postgres::pgwire::messages::response::{
    EmptyQueryResponse, ReadyForQuery, TransactionStatus,
};
use datafusion_postgres::pgwire::messages::simplequery::Query;
use datafusion_postgres::pgwire::messages::startup::ParameterStatus;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::{Sink, SinkExt};

pub use super::auth::Refusal;
use super::auth::Startup;
use super::connection::{self, Connection, Slot};
use super::encode::{self, Completion};
use super::{Shared, copy};
use crate::error::Result;
use crate::session::{BlockStatus, Prepared};

/// Variables whose changes the client is told about (ParameterStatus), like Postgres does.
const REPORTED: &[(&str, &str)] = &[
    ("application_name", "application_name"),
    ("client_encoding", "client_encoding"),
    ("datestyle", "DateStyle"),
    ("intervalstyle", "IntervalStyle"),
    ("timezone", "TimeZone"),
    ("standard_conforming_strings", "standard_conforming_strings"),
];

/// The handlers pgwire asks for, made fresh for each connection.
pub struct ConnectionHandlers {
    startup: Arc<Startup>,
    queries: Arc<Queries>,
    cancels: Arc<Cancels>,
    _slot: Option<Slot>,
}

impl ConnectionHandlers {
    pub fn new(shared: Arc<Shared>, refusal: Option<Refusal>) -> Self {
        let slot = Slot::take(&shared);
        let refusal = refusal.or_else(|| {
            slot.is_none()
                .then_some(Refusal::TooMany(shared.options.max_connections))
        });
        let verifiers: Arc<dyn AuthSource> = Arc::clone(&shared.verifiers);
        ConnectionHandlers {
            startup: Arc::new(Startup::new(&shared.options.users, &verifiers, refusal)),
            queries: Arc::new(Queries {
                shared: Arc::clone(&shared),
            }),
            cancels: Arc::new(Cancels { shared }),
            _slot: slot,
        }
    }
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn startup_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::auth::StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancels)
    }

    fn error_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::ErrorHandler> {
        Arc::new(NoopHandler)
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        Arc::clone(&self.queries)
    }
}

/// The client's side of `COPY … FROM STDIN`: data goes to the session's load as it
/// arrives; CopyDone commits it, CopyFail (or a lost connection) stores nothing.
#[async_trait]
impl CopyHandler for Queries {
    async fn on_copy_data<C>(&self, client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connection = self.connection(client)?;
        if let Some(load) = connection.copy_in.lock().await.as_ref() {
            load.send(data.data).await;
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connection = self.connection(client)?;
        let Some(load) = connection.copy_in.lock().await.take() else {
            return Ok(());
        };
        let rows = load
            .finish()
            .await
            .map_err(|e| encode::pg_error(&connection.session.explain_error(e)))?;
        let tag = Tag::new("COPY").with_rows(rows as usize);
        client
            .send(PgWireBackendMessage::CommandComplete(tag.into()))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connection = match self.connection(client) {
            Ok(c) => c,
            Err(e) => return e,
        };
        let load = connection.copy_in.lock().await.take();
        let error = match load {
            Some(load) => load.fail(&fail.message).await,
            None => crate::error::AugurError::Cancelled,
        };
        let mut info = encode::error_info(&error);
        // PostgreSQL reports an aborted COPY as query_canceled.
        info.code = "57014".into();
        PgWireError::UserError(Box::new(info))
    }
}

pub struct Cancels {
    shared: Arc<Shared>,
}

#[async_trait]
impl CancelHandler for Cancels {
    async fn on_cancel_request(&self, request: CancelRequest) {
        self.shared
            .connections
            .cancel(request.pid, &request.secret_key.to_bytes());
    }
}

/// A statement after Parse: its text and what planning it told us.
#[derive(Debug, Clone)]
pub struct Statement {
    sql: String,
    prepared: Prepared,
}

pub struct Queries {
    shared: Arc<Shared>,
}

impl Queries {
    fn connection<C: ClientInfo>(&self, client: &C) -> PgWireResult<Arc<Connection>> {
        connection::of(&self.shared, client).map_err(|e| encode::pg_error(&e))
    }

    /// The ReadyForQuery letter for the connection's session: idle, in a block, failed.
    fn wire_status<C: ClientInfo>(&self, client: &C) -> PgWireResult<TransactionStatus> {
        Ok(
            match self.connection(client)?.session.transaction_status() {
                BlockStatus::Idle => TransactionStatus::Idle,
                BlockStatus::InBlock => TransactionStatus::Transaction,
                BlockStatus::Failed => TransactionStatus::Error,
            },
        )
    }

    /// Run one statement and turn its result into a wire response. `stream`: rows go out
    /// as they are made; otherwise they are collected first (a statement followed by others
    /// in one simple query must finish before the next one starts).
    async fn run<C>(
        &self,
        client: &mut C,
        connection: &Connection,
        sql: &str,
        params: Option<ParamValues>,
        format: &Format,
        stream: bool,
    ) -> Result<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
    {
        let session = &connection.session;
        if let Some(copy) = crate::session::parse_copy_from(sql)? {
            let format = if copy.binary() { 1 } else { 0 };
            let load = session.copy_in(copy).await?;
            let columns = load.columns();
            *connection.copy_in.lock().await = Some(load);
            return Ok(Response::CopyIn(CopyResponse::new(
                format,
                columns,
                futures::stream::empty(),
            )));
        }
        if let Some(copy) = copy::parse(sql)? {
            return copy::run(session, copy).await;
        }
        let completion = encode::completion(sql);
        let before = completion.changes_settings().then(|| reported(session));
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let result = session.execute_with(sql, params).await?;
        let schema = result.schema();
        let returns_rows = !schema.fields().is_empty()
            && matches!(completion, Completion::Rows | Completion::Summary);
        let response = if returns_rows && stream && matches!(completion, Completion::Rows) {
            let fields = encode::fields(&schema, format, options)?;
            Response::Query(encode::streaming(session.clone(), result, fields))
        } else {
            let batches = result
                .collect()
                .await
                .map_err(|e| session.explain_error(e))?;
            if returns_rows {
                let fields = encode::fields(&schema, format, options)?;
                Response::Query(encode::collected(batches, fields))
            } else {
                match completion {
                    Completion::Count("INSERT") => Response::Execution(
                        Tag::new("INSERT")
                            .with_oid(0)
                            .with_rows(crate::session::affected_rows(&batches)),
                    ),
                    Completion::Count(tag) => Response::Execution(
                        Tag::new(tag).with_rows(crate::session::affected_rows(&batches)),
                    ),
                    Completion::TransactionStart(tag) => Response::TransactionStart(Tag::new(tag)),
                    Completion::TransactionEnd(tag) => Response::TransactionEnd(Tag::new(tag)),
                    Completion::Done(tag) => Response::Execution(Tag::new(&tag)),
                    Completion::Rows | Completion::Summary => {
                        Response::Execution(Tag::new("SELECT").with_rows(0))
                    }
                }
            }
        };
        for message in session.take_notices() {
            let _ = client
                .feed(PgWireBackendMessage::NoticeResponse(
                    encode::notice(&message).into(),
                ))
                .await;
        }
        for (name, value) in before.map_or(vec![], |before| changed(&before, &reported(session))) {
            let _ = client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name, value,
                )))
                .await;
        }
        Ok(response)
    }
}

fn reported(session: &crate::session::Session) -> Vec<(String, String)> {
    REPORTED
        .iter()
        .map(|(name, shown)| {
            (
                shown.to_string(),
                session.variable(name).unwrap_or_default(),
            )
        })
        .collect()
}

fn changed(before: &[(String, String)], after: &[(String, String)]) -> Vec<(String, String)> {
    after
        .iter()
        .filter(|pair| !before.contains(pair))
        .cloned()
        .collect()
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    /// pgwire's simple-query flow, except that ReadyForQuery carries the session's own
    /// transaction state (as after an extended-protocol Sync): `ROLLBACK TO` a savepoint
    /// takes a failed block back to 'T', which pgwire's bookkeeping cannot express.
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        if query.query.chars().all(|c| c == ';' || c.is_whitespace()) {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
        } else {
            for response in SimpleQueryHandler::do_query(self, client, &query.query).await? {
                match response {
                    Response::EmptyQuery => {
                        client
                            .feed(PgWireBackendMessage::EmptyQueryResponse(
                                EmptyQueryResponse::new(),
                            ))
                            .await?
                    }
                    Response::Query(rows) => send_query_response(client, rows, true).await?,
                    Response::Execution(tag)
                    | Response::TransactionStart(tag)
                    | Response::TransactionEnd(tag) => send_execution_response(client, tag).await?,
                    Response::Error(e) => {
                        client
                            .feed(PgWireBackendMessage::ErrorResponse((*e).into()))
                            .await?
                    }
                    Response::CopyIn(copy) => {
                        pg_copy::send_copy_in_response(client, copy).await?;
                        client.set_state(PgWireConnectionState::CopyInProgress(false));
                    }
                    Response::CopyOut(copy) => {
                        pg_copy::send_copy_out_response(client, copy).await?
                    }
                    Response::CopyBoth(copy) => {
                        pg_copy::send_copy_both_response(client, copy).await?;
                        client.set_state(PgWireConnectionState::CopyInProgress(false));
                    }
                }
            }
        }
        // During COPY FROM STDIN, CopyDone or CopyFail ends the statement instead.
        if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            client.set_state(PgWireConnectionState::ReadyForQuery);
            let status = self.wire_status(client)?;
            client.set_transaction_status(status);
            send_ready_for_query(client, status).await?;
        }
        Ok(())
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connection = self.connection(client)?;
        let statements = crate::parser::split_statements(query);
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let last = statements.len() - 1;
        let mut responses = vec![];
        for (index, statement) in statements.iter().enumerate() {
            let sql = statement.text.as_str();
            match self
                .run(
                    client,
                    &connection,
                    sql,
                    None,
                    &Format::UnifiedText,
                    index == last,
                )
                .await
            {
                Ok(response) => responses.push(response),
                Err(e) => {
                    // Postgres stops a multi-statement query at its first error.
                    responses.push(Response::Error(Box::new(encode::error_info(&e))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl QueryParser for Queries {
    type Statement = Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let statements = crate::parser::split_statements(sql);
        let sql = match statements.as_slice() {
            [] => return Ok(None),
            [one] => one.text.clone(),
            _ => {
                return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "ERROR".into(),
                    "42601".into(),
                    "cannot insert multiple commands into a prepared statement".into(),
                ))));
            }
        };
        let connection = self.connection(client)?;
        let is_copy = |sql: &str| -> Result<bool> {
            Ok(crate::session::parse_copy_from(sql)?.is_some() || copy::parse(sql)?.is_some())
        };
        let prepared = if is_copy(&sql).map_err(|e| encode::pg_error(&e))? {
            copy::prepared()
        } else {
            connection
                .session
                .prepare(&sql)
                .await
                .map_err(|e| encode::pg_error(&e))?
        };
        Ok(Some(Statement { sql, prepared }))
    }

    fn get_parameter_types(&self, statement: &Statement) -> PgWireResult<Vec<Type>> {
        Ok(wire_types(&statement.prepared.parameter_types))
    }

    fn get_result_schema(
        &self,
        statement: &Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let format = column_format.unwrap_or(&Format::UnifiedText);
        let options = Arc::new(FormatOptions::default());
        encode::fields(&statement.prepared.schema, format, options)
            .map(|fields| fields.as_ref().clone())
            .map_err(|e| encode::pg_error(&e))
    }
}

/// Parameter types for ParameterDescription. One nothing decides (`$1 IS NULL`) is text,
/// as in Postgres, so clients can always send it.
fn wire_types(types: &[Option<DataType>]) -> Vec<Type> {
    types
        .iter()
        .map(|t| {
            t.as_ref()
                .and_then(|t| into_pg_type(t).ok())
                .unwrap_or(Type::TEXT)
        })
        .collect()
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Statement;
    type QueryParser = Queries;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(Queries {
            shared: Arc::clone(&self.shared),
        })
    }

    /// ReadyForQuery with the session's own transaction state: pgwire's bookkeeping cannot
    /// leave the failed state except by ending the block, but `ROLLBACK TO` a savepoint
    /// recovers it, and clients (psycopg's `transaction_status`) read the letter.
    async fn on_sync<C>(&self, client: &mut C, _message: PgSync) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        client.portal_store().rm_portal(DEFAULT_NAME);
        let status = self.wire_status(client)?;
        client.set_transaction_status(status);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        client.flush().await?;
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connection = self.connection(client)?;
        let statement = &portal.statement.statement;
        let types = &statement.prepared.parameter_types;
        let params = if portal.parameter_len() == 0 {
            None
        } else {
            let inferred: Vec<Option<&DataType>> = types.iter().map(Option::as_ref).collect();
            let wire = wire_types(types);
            let wire: Vec<Option<&Type>> = wire.iter().map(Some).collect();
            Some(deserialize_parameters_with_server_types(
                portal, &inferred, &wire,
            )?)
        };
        self.run(
            client,
            &connection,
            &statement.sql,
            params,
            &portal.result_column_format,
            true,
        )
        .await
        .map_err(|e| encode::pg_error(&e))
    }
}
