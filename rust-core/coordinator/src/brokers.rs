//! The Kafka brokers' end offsets: the other half of a Kafka source's true backlog (the
//! reader's positions are its `currentOffset` metrics). Opt-in with `kafka.bootstrap-servers`.
//!
//! The client is rskafka (pure Rust: no C library to build or to load, the same code in the
//! plugin and in `watch`; docs/ARCHITECTURE.md has the comparison). Each set of brokers gets one
//! thread of its own with a single-threaded runtime; the loop hands it a request and waits
//! at most its timeout, so a slow or silent broker costs the loop one timeout, never more, and
//! a request still running when the next comes makes that one fail at once (`Busy`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autotune_model::options::Options;
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::BackoffConfig;

/// One partition of a topic, as a Kafka reader's metrics name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// The brokers a job's sources read and how to log in to them (its options, or the cluster's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KafkaTarget {
    pub bootstrap: String,
    pub properties: BTreeMap<String, String>,
}

impl KafkaTarget {
    /// The target the options name; `None`: `kafka.bootstrap-servers` is not set.
    pub fn of(options: &Options) -> Option<KafkaTarget> {
        options
            .kafka_bootstrap_servers
            .as_ref()
            .map(|bootstrap| KafkaTarget {
                bootstrap: bootstrap.clone(),
                properties: options.kafka_properties.clone(),
            })
    }
}

/// Why the end offsets could not be had. Each kind is said once (AT131).
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerError {
    /// A property the client cannot use (an unsupported mechanism or store).
    Config(String),
    Unreachable(String),
    /// The brokers refused the credentials.
    Authentication(String),
    /// A topic or partition the source reads is not on the brokers (deleted).
    UnknownTopic(String),
    /// The brokers have another number of partitions than the source reads (one added).
    PartitionsChanged {
        topic: String,
        brokers: usize,
        source: usize,
    },
    /// No answer within the timeout (a slow broker).
    Timeout(Duration),
    /// The last request has not finished yet.
    Busy,
    Other(String),
}

impl BrokerError {
    /// What kind of trouble it is: a kind is said once, until the brokers answer again.
    pub fn kind(&self) -> &'static str {
        match self {
            BrokerError::Config(_) => "config",
            BrokerError::Unreachable(_) => "unreachable",
            BrokerError::Authentication(_) => "authentication",
            BrokerError::UnknownTopic(_) => "unknown-topic",
            BrokerError::PartitionsChanged { .. } => "partitions-changed",
            BrokerError::Timeout(_) | BrokerError::Busy => "timeout",
            BrokerError::Other(_) => "other",
        }
    }
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokerError::Config(e) => write!(f, "the client cannot use the properties: {e}"),
            BrokerError::Unreachable(e) => write!(f, "unreachable: {e}"),
            BrokerError::Authentication(e) => {
                write!(f, "refused the credentials (kafka.properties.sasl.*): {e}")
            }
            BrokerError::UnknownTopic(e) => {
                write!(f, "a topic or partition the source reads is gone: {e}")
            }
            BrokerError::PartitionsChanged {
                topic,
                brokers,
                source,
            } => write!(
                f,
                "topic {topic} has {brokers} partitions on the brokers, the source reads {source} (partitions added or read selectively)"
            ),
            BrokerError::Timeout(t) => write!(f, "no answer within {} ms", t.as_millis()),
            BrokerError::Busy => f.write_str("the last request has not been answered yet"),
            BrokerError::Other(e) => e.fmt(f),
        }
    }
}

/// What the client is given: the brokers and how to log in, from a target's properties.
#[derive(Clone)]
struct ClientSettings {
    brokers: Vec<String>,
    client_id: String,
    sasl: Option<SaslConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Properties of a Flink Kafka source that say nothing about reaching the brokers.
const CONSUMER_ONLY: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "key.deserializer",
    "value.deserializer",
    "partition.discovery.interval.ms",
    "commit.offsets.on.checkpoint",
    "client.id.prefix",
    "auto.offset.reset",
    "enable.auto.commit",
    "register.consumer.metrics",
    "isolation.level",
];

impl ClientSettings {
    /// The connector's spelling of the properties turned into the client's settings.
    fn of(target: &KafkaTarget) -> Result<ClientSettings, String> {
        let get = |key: &str| target.properties.get(key).map(|v| v.trim());
        let protocol = get("security.protocol")
            .unwrap_or("PLAINTEXT")
            .to_ascii_uppercase();
        let (sasl_on, tls_on) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SASL_PLAINTEXT" => (true, false),
            "SSL" => (false, true),
            "SASL_SSL" => (true, true),
            other => return Err(format!("security.protocol {other} is not a Kafka protocol")),
        };
        if target
            .properties
            .keys()
            .any(|k| k.starts_with("ssl.keystore."))
        {
            return Err("client certificates (ssl.keystore.*) are not supported yet".into());
        }
        Ok(ClientSettings {
            brokers: target.bootstrap.split(',').map(str::to_string).collect(),
            client_id: get("client.id").unwrap_or("flink-autotune").to_string(),
            sasl: sasl_on
                .then(|| sasl_config(&target.properties))
                .transpose()?,
            tls: tls_on.then(|| tls_config(&target.properties)).transpose()?,
        })
    }
}

fn sasl_config(properties: &BTreeMap<String, String>) -> Result<SaslConfig, String> {
    let mechanism = properties
        .get("sasl.mechanism")
        .map_or("GSSAPI", |m| m.trim());
    let jaas = properties
        .get("sasl.jaas.config")
        .ok_or("sasl.jaas.config is not set (its username and password are the login)")?;
    let options = jaas_options(jaas)?;
    let login = |key: &str| {
        options
            .get(key)
            .cloned()
            .ok_or_else(|| format!("sasl.jaas.config has no {key}"))
    };
    let credentials = || Ok::<_, String>(Credentials::new(login("username")?, login("password")?));
    match mechanism.to_ascii_uppercase().as_str() {
        "PLAIN" => Ok(SaslConfig::Plain(credentials()?)),
        "SCRAM-SHA-256" => Ok(SaslConfig::ScramSha256(credentials()?)),
        "SCRAM-SHA-512" => Ok(SaslConfig::ScramSha512(credentials()?)),
        other => Err(format!(
            "sasl.mechanism {other} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 are)"
        )),
    }
}

/// The options of a JAAS login entry, `<module> <flag> key="value" ...;`, as Kafka's
/// `sasl.jaas.config` holds one: quoted values may hold spaces, `;` and escaped quotes.
fn jaas_options(entry: &str) -> Result<HashMap<String, String>, String> {
    let mut rest = entry.trim();
    for _ in 0..2 {
        // The login module's class, then its flag (required, optional, ...).
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    let mut options = HashMap::new();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().to_string();
        let mut value = String::new();
        let after = rest[eq + 1..].trim_start();
        let consumed = if let Some(quoted) = after.strip_prefix('"') {
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or("sasl.jaas.config has an unclosed quote")?;
            after.len() - quoted.len() + end
        } else {
            let end = after
                .find(|c: char| c.is_whitespace() || c == ';')
                .unwrap_or(after.len());
            value.push_str(&after[..end]);
            end
        };
        options.insert(key, value);
        rest = after[consumed..].trim_start().trim_start_matches(';');
    }
    Ok(options)
}

fn tls_config(properties: &BTreeMap<String, String>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let kind = properties
        .get("ssl.truststore.type")
        .map_or("JKS", |t| t.trim())
        .to_ascii_uppercase();
    let pem = match (
        properties.get("ssl.truststore.certificates"),
        properties.get("ssl.truststore.location"),
    ) {
        (Some(inline), _) => inline.clone().into_bytes(),
        (None, Some(path)) if kind == "PEM" => std::fs::read(path.trim())
            .map_err(|e| format!("ssl.truststore.location {}: {e}", path.trim()))?,
        (None, Some(_)) => {
            return Err(format!(
                "a {kind} truststore cannot be read here: convert it to PEM and set ssl.truststore.type=PEM"
            ))
        }
        (None, None) => {
            return Err("set ssl.truststore.location (PEM) or ssl.truststore.certificates".into())
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("truststore: {e}"))?;
        roots.add(cert).map_err(|e| format!("truststore: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the truststore holds no certificate".into());
    }
    // ring, not aws-lc-rs: it builds without cmake. It lacks post-quantum key exchange (hence
    // the deprecation), which reading offsets does not need.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The properties a target sets that the client does not use (besides the consumer's own):
/// said once beside the backlog line, so a user knows what was not applied.
pub fn unused_properties(target: &KafkaTarget) -> Vec<String> {
    const USED: &[&str] = &[
        "security.protocol",
        "sasl.mechanism",
        "sasl.jaas.config",
        "ssl.truststore.type",
        "ssl.truststore.location",
        "ssl.truststore.certificates",
        "client.id",
    ];
    target
        .properties
        .keys()
        .filter(|k| !USED.contains(&k.as_str()) && !CONSUMER_ONLY.contains(&k.as_str()))
        .cloned()
        .collect()
}

struct Request {
    partitions: Vec<TopicPartition>,
    reply: SyncSender<Result<Vec<i64>, BrokerError>>,
}

/// Reads end offsets from one set of brokers, on a thread of its own.
pub struct BrokerReader {
    pub target: KafkaTarget,
    requests: Option<SyncSender<Request>>,
    timeout: Duration,
    health: Mutex<Health>,
}

/// What the reader has seen of the brokers: what to say, and when to try them again.
#[derive(Default)]
struct Health {
    /// The kind of trouble said last; `None`: the brokers answered last time.
    said: Option<&'static str>,
    /// Lines not yet said: trouble of a new kind, or the brokers answering again.
    news: Vec<Result<(), BrokerError>>,
    /// After trouble, the brokers are not asked again before this (the loop keeps its pace
    /// through an outage); the trouble stands for every read until then.
    resting: Option<(std::time::Instant, BrokerError)>,
}

/// How long brokers in trouble are left alone before the next try.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

impl BrokerReader {
    /// A reader for `target` whose every read gives up after `timeout`. Properties it cannot
    /// use make every read that error (said once by the loop).
    pub fn start(target: KafkaTarget, timeout: Duration) -> BrokerReader {
        let settings = ClientSettings::of(&target).map_err(BrokerError::Config);
        let (tx, rx) = mpsc::sync_channel::<Request>(1);
        let spawned = std::thread::Builder::new()
            .name("autotune-kafka".into())
            .spawn(move || serve(settings, timeout, rx));
        BrokerReader {
            target,
            requests: spawned.ok().map(|_| tx),
            timeout,
            health: Mutex::new(Health::default()),
        }
    }

    /// Each partition's end offset (the offset the next record will get), in order. Brokers
    /// in trouble are asked again only [`RETRY_AFTER`] later; until then their trouble stands.
    pub fn end_offsets(&self, partitions: &[TopicPartition]) -> Result<Vec<i64>, BrokerError> {
        if let Some((since, trouble)) = &self.health().resting {
            if since.elapsed() < RETRY_AFTER {
                return Err(trouble.clone());
            }
        }
        let outcome = self.ask(partitions);
        self.note(&outcome);
        outcome
    }

    /// Reports a source whose metrics name no partition: its backlog stays `pendingRecords`.
    pub fn note_unnamed_partitions(&self, vertex: &str) {
        self.note::<()>(&Err(BrokerError::Other(format!(
            "the metrics of \"{vertex}\" name no partition (KafkaSourceReader.topic.<topic>.partition.<n>.currentOffset)"
        ))));
    }

    /// The lines to say since the last call: each kind of trouble the first time it is seen,
    /// and the brokers answering again after trouble.
    pub fn take_news(&self) -> Vec<Result<(), BrokerError>> {
        std::mem::take(&mut self.health().news)
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note<T>(&self, outcome: &Result<T, BrokerError>) {
        let mut health = self.health();
        match outcome {
            Ok(_) => {
                health.resting = None;
                if health.said.take().is_some() {
                    health.news.push(Ok(()));
                }
            }
            Err(e) => {
                if !matches!(e, BrokerError::Other(m) if m.starts_with("the metrics of")) {
                    health.resting = Some((std::time::Instant::now(), e.clone()));
                }
                if health.said != Some(e.kind()) {
                    health.said = Some(e.kind());
                    health.news.push(Err(e.clone()));
                }
            }
        }
    }

    fn ask(&self, partitions: &[TopicPartition]) -> Result<Vec<i64>, BrokerError> {
        let requests = self
            .requests
            .as_ref()
            .ok_or_else(|| BrokerError::Other("no thread for the Kafka client".into()))?;
        let (reply, answer) = mpsc::sync_channel(1);
        let request = Request {
            partitions: partitions.to_vec(),
            reply,
        };
        match requests.try_send(request) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(BrokerError::Busy),
            Err(TrySendError::Disconnected(_)) => {
                return Err(BrokerError::Other("the Kafka client's thread ended".into()))
            }
        }
        // The thread gives up at its timeout; a little more here for its answer to arrive.
        match answer.recv_timeout(self.timeout + Duration::from_millis(500)) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(BrokerError::Timeout(self.timeout)),
            Err(RecvTimeoutError::Disconnected) => {
                Err(BrokerError::Other("the Kafka client's thread ended".into()))
            }
        }
    }
}

/// The client thread: one request at a time, each bounded by `timeout`. After any failure
/// the connection is dropped and built again for the next request.
fn serve(
    settings: Result<ClientSettings, BrokerError>,
    timeout: Duration,
    requests: Receiver<Request>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let mut session: Option<Session> = None;
    for request in requests {
        let result = match (&settings, &runtime) {
            (Err(e), _) => Err(e.clone()),
            (_, Err(e)) => Err(BrokerError::Other(format!(
                "no runtime for the client: {e}"
            ))),
            (Ok(settings), Ok(runtime)) => runtime.block_on(async {
                let read = read_end_offsets(&mut session, settings, timeout, &request.partitions);
                tokio::time::timeout(timeout, read)
                    .await
                    .unwrap_or(Err(BrokerError::Timeout(timeout)))
            }),
        };
        if result.is_err() {
            session = None;
        }
        let _ = request.reply.send(result);
    }
}

/// A connection to the brokers and a client per partition read before.
struct Session {
    client: Client,
    partitions: HashMap<TopicPartition, PartitionClient>,
}

async fn read_end_offsets(
    session: &mut Option<Session>,
    settings: &ClientSettings,
    timeout: Duration,
    partitions: &[TopicPartition],
) -> Result<Vec<i64>, BrokerError> {
    if session.is_none() {
        *session = Some(Session {
            client: connect(settings, timeout).await?,
            partitions: HashMap::new(),
        });
    }
    let session = session.as_mut().expect("connected above");
    check_partitions(&session.client, partitions).await?;
    for tp in partitions {
        if !session.partitions.contains_key(tp) {
            let client = session
                .client
                .partition_client(tp.topic.clone(), tp.partition, UnknownTopicHandling::Error)
                .await
                .map_err(|e| classify(&e))?;
            session.partitions.insert(tp.clone(), client);
        }
    }
    let reads = partitions
        .iter()
        .map(|tp| session.partitions[tp].get_offset(OffsetAt::Latest));
    futures::future::try_join_all(reads)
        .await
        .map_err(|e| classify(&e))
}

async fn connect(settings: &ClientSettings, timeout: Duration) -> Result<Client, BrokerError> {
    // rskafka retries for ever by default: stop retrying in time for the error to be seen
    // (refused, bad credentials) well before the read's own timeout. Its deadline is checked
    // after each attempt, and a refused login takes about a second per attempt (measured on
    // Kafka 4.1: with a 750 ms deadline it was seen after 2.3 s, so at 3 s it raced the
    // timeout): a tenth of the timeout allows a quick retry of a dropped connection, not of a
    // refusal. The brokers are asked again at the next read anyway.
    let backoff = BackoffConfig {
        init_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(250),
        base: 2.0,
        deadline: Some(timeout / 10),
    };
    let mut builder = ClientBuilder::new(settings.brokers.clone())
        .client_id(settings.client_id.as_str())
        .backoff_config(backoff);
    if let Some(sasl) = &settings.sasl {
        builder = builder.sasl_config(sasl.clone());
    }
    if let Some(tls) = &settings.tls {
        builder = builder.tls_config(tls.clone());
    }
    builder.build().await.map_err(|e| classify(&e))
}

/// Every topic read is on the brokers with the partitions the source reads, no more.
async fn check_partitions(
    client: &Client,
    partitions: &[TopicPartition],
) -> Result<(), BrokerError> {
    let topics = client.list_topics().await.map_err(|e| classify(&e))?;
    let mut read: BTreeMap<&str, usize> = BTreeMap::new();
    for tp in partitions {
        *read.entry(tp.topic.as_str()).or_default() += 1;
    }
    for (topic, source) in read {
        let Some(found) = topics.iter().find(|t| t.name == topic) else {
            return Err(BrokerError::UnknownTopic(format!("topic {topic}")));
        };
        if let Some(tp) = partitions
            .iter()
            .find(|tp| tp.topic == topic && !found.partitions.contains(&tp.partition))
        {
            return Err(BrokerError::UnknownTopic(format!(
                "partition {} of topic {topic}",
                tp.partition
            )));
        }
        if found.partitions.len() != source {
            return Err(BrokerError::PartitionsChanged {
                topic: topic.to_string(),
                brokers: found.partitions.len(),
                source,
            });
        }
    }
    Ok(())
}

/// The kind of a client error, from its text: rskafka nests the cause (a refused connection,
/// a failed SASL handshake) inside retries and connection errors.
fn classify(e: &rskafka::client::error::Error) -> BrokerError {
    let text = e.to_string();
    let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
    if has(&["Sasl", "SASL", "Authentication", "authentication"]) {
        BrokerError::Authentication(text)
    } else if has(&["UnknownTopicOrPartition"]) {
        BrokerError::UnknownTopic(text)
    } else if has(&[
        "error connecting",
        "Connection refused",
        "lookup",
        "Retry exceeded deadline",
    ]) {
        BrokerError::Unreachable(text)
    } else {
        BrokerError::Other(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(properties: &[(&str, &str)]) -> KafkaTarget {
        KafkaTarget {
            bootstrap: "127.0.0.1:9092".into(),
            properties: properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_jaas_entry_gives_its_login_with_quotes_and_escapes() {
        let options = jaas_options(
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="p;a \"q\" s";"#,
        )
        .unwrap();
        assert_eq!(options["username"], "alice");
        assert_eq!(options["password"], r#"p;a "q" s"#);
        let bare = jaas_options("x.PlainLoginModule required username=bob password=pw;").unwrap();
        assert_eq!(
            (bare["username"].as_str(), bare["password"].as_str()),
            ("bob", "pw")
        );
        assert!(jaas_options(r#"x.PlainLoginModule required password="open"#).is_err());
    }

    #[test]
    fn the_connectors_properties_become_the_clients_settings() {
        let plain = ClientSettings::of(&target(&[])).unwrap();
        assert!(plain.sasl.is_none() && plain.tls.is_none());
        assert_eq!(plain.brokers, ["127.0.0.1:9092"]);
        let sasl = ClientSettings::of(&target(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";"#,
            ),
        ]))
        .unwrap();
        assert!(matches!(sasl.sasl, Some(SaslConfig::ScramSha512(_))));
        let refused =
            |properties: &[(&str, &str)]| ClientSettings::of(&target(properties)).err().unwrap();
        assert!(refused(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "GSSAPI"),
            ("sasl.jaas.config", "x required;")
        ])
        .contains("GSSAPI is not supported"));
        assert!(refused(&[("security.protocol", "SASL_PLAINTEXT")])
            .contains("sasl.jaas.config is not set"));
        assert!(refused(&[
            ("security.protocol", "SSL"),
            ("ssl.truststore.location", "/x.jks")
        ])
        .contains("convert it to PEM"));
        assert!(refused(&[("security.protocol", "TLS")]).contains("not a Kafka protocol"));
        assert_eq!(
            unused_properties(&target(&[
                ("group.id", "g"),
                ("ssl.endpoint.identification.algorithm", ""),
                ("client.id", "c")
            ])),
            ["ssl.endpoint.identification.algorithm"]
        );
    }

    /// A reader of brokers at `port` on loopback, and the one partition the tests ask for.
    fn reader_at(port: u16, timeout: Duration) -> (BrokerReader, [TopicPartition; 1]) {
        let target = KafkaTarget {
            bootstrap: format!("127.0.0.1:{port}"),
            properties: BTreeMap::new(),
        };
        let partition = TopicPartition {
            topic: "events".into(),
            partition: 0,
        };
        (BrokerReader::start(target, timeout), [partition])
    }

    /// A broker that takes the connection and never answers: the read gives up at its
    /// timeout, as a timeout, and the loop is free again.
    #[test]
    fn a_silent_broker_is_a_timeout_not_a_wait() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = std::thread::spawn(move || {
            let connections: Vec<_> = listener.incoming().take(1).collect();
            std::thread::sleep(Duration::from_secs(3));
            drop(connections);
        });
        let (reader, partitions) = reader_at(port, Duration::from_millis(500));
        let began = std::time::Instant::now();
        let read = reader.end_offsets(&partitions);
        assert!(
            began.elapsed() < Duration::from_secs(3),
            "{:?}",
            began.elapsed()
        );
        assert!(matches!(read, Err(BrokerError::Timeout(_))), "{read:?}");
        held.join().unwrap();
    }

    /// Nothing listens on the port: one error within the timeout, said once, and the
    /// brokers answering again is news too.
    #[test]
    fn unreachable_brokers_are_one_error_within_the_timeout() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (reader, partitions) = reader_at(port, Duration::from_millis(800));
        let began = std::time::Instant::now();
        let first = reader.end_offsets(&partitions);
        // Not retried for ever (rskafka's default): the reader's own bound, with room for a busy machine.
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );
        assert!(
            matches!(first, Err(BrokerError::Unreachable(_))),
            "{first:?}"
        );
        assert_eq!(
            reader.take_news(),
            [first.map(|_| ())],
            "said the first time"
        );
        // Left alone for a while: the same trouble at once, not said again.
        let began = std::time::Instant::now();
        let again = reader.end_offsets(&partitions);
        assert!(
            began.elapsed() < Duration::from_millis(800) && again.is_err(),
            "not asked"
        );
        assert!(reader.take_news().is_empty(), "not said again");
        reader.note(&Ok::<(), BrokerError>(()));
        assert_eq!(reader.take_news(), [Ok(())], "answering again is news");
    }
}
