//! Partition ownership by the broker's consumer groups (Kafka's classic group protocol:
//! FindCoordinator, JoinGroup, SyncGroup, Heartbeat, DescribeGroups, LeaveGroup). rskafka speaks
//! no group protocol, so this module speaks it itself over one TCP connection to the
//! coordinator, with the message types of `kafka-protocol`. The coordinator alone decides who is
//! a member: it drops one not heard from for the session timeout.
//!
//! Who owns what is a pure function of that membership (`assign`): rendezvous hashing of
//! (partition, member ID) with bounded loads, so shares are even (⌊P/M⌋ or ⌈P/M⌉) and when a
//! member leaves mostly its own partitions move. Every member reads the member list with
//! DescribeGroups at each heartbeat and computes its own share; the leader also sends the same
//! plan through SyncGroup, so tools (`kafka-consumer-groups --describe`) show it. Reading the
//! list rather than trusting the SyncGroup answer is what makes this work on tansu 0.6 too:
//! after dropping a silent member its coordinator can keep the old generation and hand out the
//! old assignments, the dead member's partitions included. Members announce themselves with
//! the standard consumer subscription (the topic, and an identity in the user data) and never
//! change it, since a coordinator starts a new generation on every metadata change.
//!
//! Handover is not fenced: for a moment (a zombie that outlives its session, or two members
//! reading the list a heartbeat apart) two members may consume one partition. Nothing is lost:
//! a committed offset only ever vouches for listed blocks, and whichever member commits resumes
//! where its own blocks end. Spans written twice are duplicates of the kind a builder restart
//! already makes: each block records its reading of the partition (`BlockMeta::sources`), and
//! reads by ID, search, TraceQL metrics and compaction count them once. Gains wait for two agreeing readings and losses do
//! not, so a rebalance between live members stops the old owner before the new one starts. A
//! member that cannot reach the coordinator for a whole session gives up its partitions, as
//! the coordinator has given them away.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    RequestHeader, ResponseHeader, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The assignment protocol's name in JoinGroup: every member must name the same one.
const PROTOCOL: &str = "andante-sticky";
/// Versions below each API's first "flexible" version, so headers stay the classic ones; every
/// Kafka-API broker in use answers them.
const FIND_COORDINATOR_VERSION: i16 = 2;
const JOIN_VERSION: i16 = 5;
const SYNC_VERSION: i16 = 3;
const HEARTBEAT_VERSION: i16 = 3;
const LEAVE_VERSION: i16 = 3;
const DESCRIBE_VERSION: i16 = 3;
/// The embedded consumer-protocol structures' version (v1 carries owned partitions).
const CONSUMER_PROTOCOL_VERSION: i16 = 1;
/// Largest response accepted from the coordinator (a JoinGroup lists every member's metadata).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

// Kafka error codes this member acts on.
const NONE: i16 = 0;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

/// One consumer group of one role over the span topic.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub brokers: Vec<String>,
    /// The group's name, e.g. `andante-spans.block-builder`.
    pub group: String,
    pub topic: String,
    pub partitions: u32,
    /// The name announced in the member's metadata (host name and port, or configured), for
    /// people reading the group with broker tools.
    pub identity: String,
    /// The coordinator drops a member not heard from for this long.
    pub session_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("connecting to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("{0}: timed out")]
    Timeout(&'static str),
    #[error("{0}: {1}")]
    Protocol(&'static str, String),
    #[error("{0}: broker error code {1}")]
    Broker(&'static str, i16),
}

/// One request/response connection (the coordinator answers a connection's requests in order;
/// this member sends one at a time).
struct Connection {
    stream: TcpStream,
    correlation: i32,
}

impl Connection {
    async fn open(address: &str, timeout: Duration) -> Result<Connection, GroupError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| GroupError::Timeout("connect"))?
            .map_err(|error| GroupError::Connect(address.to_owned(), error))?;
        stream.set_nodelay(true).ok();
        Ok(Connection {
            stream,
            correlation: 0,
        })
    }

    async fn call<R: Request>(
        &mut self,
        what: &'static str,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, GroupError> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("andante")));
        let mut body = BytesMut::new();
        body.put_u32(0);
        header
            .encode(&mut body, R::header_version(version))
            .and_then(|()| request.encode(&mut body, version))
            .map_err(|error| GroupError::Protocol(what, error.to_string()))?;
        let length = (body.len() - 4) as u32;
        body[..4].copy_from_slice(&length.to_be_bytes());
        let exchange = async {
            self.stream
                .write_all(&body)
                .await
                .map_err(|error| GroupError::Io(what, error))?;
            let length = self
                .stream
                .read_u32()
                .await
                .map_err(|error| GroupError::Io(what, error))? as usize;
            if length > MAX_RESPONSE_BYTES {
                return Err(GroupError::Protocol(
                    what,
                    format!("a response of {length} bytes"),
                ));
            }
            let mut response = vec![0u8; length];
            self.stream
                .read_exact(&mut response)
                .await
                .map_err(|error| GroupError::Io(what, error))?;
            Ok(Bytes::from(response))
        };
        let mut response = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| GroupError::Timeout(what))??;
        let header = ResponseHeader::decode(&mut response, R::Response::header_version(version))
            .map_err(|error| GroupError::Protocol(what, error.to_string()))?;
        if header.correlation_id != self.correlation {
            return Err(GroupError::Protocol(
                what,
                format!(
                    "answer to request {} where {} was asked",
                    header.correlation_id, self.correlation
                ),
            ));
        }
        R::Response::decode(&mut response, version)
            .map_err(|error| GroupError::Protocol(what, error.to_string()))
    }
}

fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// A member's subscription as the standard consumer protocol writes it: a version, then the
/// structure in that version.
fn encode_subscription(topic: &str, identity: &str) -> Bytes {
    let subscription = ConsumerProtocolSubscription::default()
        .with_topics(vec![str_bytes(topic)])
        .with_user_data(Some(Bytes::copy_from_slice(identity.as_bytes())));
    let mut out = BytesMut::new();
    out.put_i16(CONSUMER_PROTOCOL_VERSION);
    subscription
        .encode(&mut out, CONSUMER_PROTOCOL_VERSION)
        .expect("a subscription of a topic name and integers encodes");
    out.freeze()
}

fn encode_assignment(topic: &str, partitions: &[u32]) -> Bytes {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        AssignedTopic::default()
            .with_topic(TopicName(str_bytes(topic)))
            .with_partitions(partitions.iter().map(|p| *p as i32).collect()),
    ]);
    let mut out = BytesMut::new();
    out.put_i16(CONSUMER_PROTOCOL_VERSION);
    assignment
        .encode(&mut out, CONSUMER_PROTOCOL_VERSION)
        .expect("an assignment of a topic name and integers encodes");
    out.freeze()
}

/// The plan for a membership: `partitions` among `members` (member IDs) by rendezvous hashing
/// with bounded loads. Each partition, in order, goes to the member with the highest
/// `rank(partition, member)` still below its cap; caps are ⌈P/M⌉ for the first P mod M members
/// to pass ⌊P/M⌋ and ⌊P/M⌋ after, so every share is ⌊P/M⌋ or ⌈P/M⌉. It depends only on the set
/// of members, so every member computes the same plan from the same list.
pub(crate) fn assign(partitions: u32, members: &[String]) -> BTreeMap<String, Vec<u32>> {
    let mut plan: BTreeMap<String, Vec<u32>> = members
        .iter()
        .map(|member| (member.clone(), Vec::new()))
        .collect();
    if plan.is_empty() {
        return plan;
    }
    let count = plan.len() as u32;
    let (floor, mut big_left) = (partitions / count, partitions % count);
    let ids: Vec<String> = plan.keys().cloned().collect();
    for partition in 0..partitions {
        let mut ranked: Vec<(u64, &String)> =
            ids.iter().map(|id| (rank(partition, id), id)).collect();
        ranked.sort_by(|(a, x), (b, y)| b.cmp(a).then_with(|| x.cmp(y)));
        for (_, id) in ranked {
            let owned = plan.get_mut(id).expect("planned above");
            let held = owned.len() as u32;
            if held < floor || (held == floor && big_left > 0) {
                if held == floor {
                    big_left -= 1;
                }
                owned.push(partition);
                break;
            }
        }
    }
    plan
}

/// The rendezvous weight of a partition for a member: FNV-1a-64 over both, then splitmix64's
/// finaliser, so member IDs that differ in a few characters still rank apart.
fn rank(partition: u32, member: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in partition.to_be_bytes().iter().chain(member.as_bytes()) {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// Keeps this process a member of the group until `stop`, publishing the partitions it owns
/// in `owned` whenever they change (an empty list while it owns none). On stop it leaves the
/// group, so its partitions move at once rather than after the session timeout.
pub async fn run_member(
    config: GroupConfig,
    owned: watch::Sender<Vec<u32>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut member = Member {
        config,
        member_id: String::new(),
        generation: -1,
        last_heard: Instant::now(),
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let error = match member.session(&owned, &mut stop).await {
            Ok(()) => return,
            Err(error) => error,
        };
        tracing::warn!(group = %member.config.group, %error, "consumer group: retrying");
        member.give_up_if_silent(&owned);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

fn publish(config: &GroupConfig, owned: &watch::Sender<Vec<u32>>, partitions: Vec<u32>) {
    if *owned.borrow() != partitions {
        tracing::info!(group = %config.group, ?partitions, "consumer group: owned partitions changed");
        owned.send_replace(partitions);
    }
}

/// What a heartbeat says of this member.
enum Beat {
    Member,
    /// A rebalance: join again, keeping the partitions until the new plan says otherwise.
    Rejoin,
    /// Dropped (unknown member, or a generation it missed): its partitions are gone.
    Expelled,
}

struct Member {
    config: GroupConfig,
    member_id: String,
    generation: i32,
    /// When the coordinator last confirmed this member's membership.
    last_heard: Instant,
}

impl Member {
    fn call_timeout(&self) -> Duration {
        self.config.session_timeout + Duration::from_secs(5)
    }

    /// One connection to the coordinator: join, sync, then heartbeat and read the membership
    /// (acting on it as `assign` plans) until the coordinator asks for a rejoin (joined again on the same connection), an error
    /// (the caller retries with a new connection), or a stop (this member leaves).
    async fn session(
        &mut self,
        owned: &watch::Sender<Vec<u32>>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), GroupError> {
        let mut connection = self.coordinator().await?;
        let every = self.config.session_timeout / 3;
        // Kept across rejoins: gains need two agreeing readings, whichever generation.
        let mut previous = None;
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            if !self.join_and_sync(&mut connection).await? {
                self.give_up_if_silent(owned);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            loop {
                let members = self.members(&mut connection).await?;
                let mine = if members.contains(&self.member_id) {
                    assign(self.config.partitions, &members)
                        .remove(&self.member_id)
                        .unwrap_or_default()
                } else {
                    // Not (yet, or any longer) a member in the coordinator's eyes.
                    Vec::new()
                };
                // Losses count at once; gains once two readings a heartbeat apart agree, since
                // a list read mid-rebalance can lack a member for a moment, and each partition
                // gained costs a replay from its committed offset.
                let now: Vec<u32> = owned.borrow().clone();
                let settled = previous.as_ref() == Some(&mine);
                let kept: Vec<u32> = if settled {
                    mine.clone()
                } else {
                    now.into_iter().filter(|p| mine.contains(p)).collect()
                };
                previous = Some(mine);
                publish(&self.config, owned, kept);
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => {
                        self.leave(&mut connection).await;
                        return Ok(());
                    }
                }
                match self.heartbeat(&mut connection).await? {
                    Beat::Member => {}
                    Beat::Rejoin => break,
                    Beat::Expelled => {
                        // The coordinator has given this member's partitions away already.
                        publish(&self.config, owned, Vec::new());
                        break;
                    }
                }
            }
        }
    }

    /// Gives up every partition once the coordinator has not confirmed this member for a
    /// whole session (it has handed them to the others by now).
    fn give_up_if_silent(&self, owned: &watch::Sender<Vec<u32>>) {
        if self.last_heard.elapsed() > self.config.session_timeout {
            publish(&self.config, owned, Vec::new());
        }
    }

    /// Heartbeats and member lists must come back within a heartbeat's period: a member that
    /// waits longer on a dead connection holds partitions the coordinator gave away.
    fn beat_timeout(&self) -> Duration {
        (self.config.session_timeout / 3).max(Duration::from_secs(1))
    }

    async fn coordinator(&self) -> Result<Connection, GroupError> {
        let mut last = GroupError::Protocol("find coordinator", "no brokers".to_owned());
        for broker in &self.config.brokers {
            let attempt = async {
                let mut connection = Connection::open(broker, self.call_timeout()).await?;
                let request = FindCoordinatorRequest::default()
                    .with_key(str_bytes(&self.config.group))
                    .with_key_type(0);
                let found = connection
                    .call(
                        "find coordinator",
                        FIND_COORDINATOR_VERSION,
                        &request,
                        self.call_timeout(),
                    )
                    .await?;
                if found.error_code != NONE {
                    return Err(GroupError::Broker("find coordinator", found.error_code));
                }
                let address = format!("{}:{}", found.host.as_str(), found.port);
                Connection::open(&address, self.call_timeout()).await
            };
            match attempt.await {
                Ok(connection) => return Ok(connection),
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    /// One JoinGroup and SyncGroup (the leader sends the plan for the members it was given):
    /// false when the group is still rebalancing and this member should join again.
    async fn join_and_sync(&mut self, connection: &mut Connection) -> Result<bool, GroupError> {
        let config = &self.config;
        let session_ms = config.session_timeout.as_millis().min(i32::MAX as u128) as i32;
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes(&config.group)))
            .with_session_timeout_ms(session_ms)
            .with_rebalance_timeout_ms(session_ms)
            .with_member_id(str_bytes(&self.member_id))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str(PROTOCOL))
                .with_metadata(encode_subscription(&config.topic, &config.identity))]);
        let joined = connection
            .call("join group", JOIN_VERSION, &request, self.call_timeout())
            .await?;
        tracing::debug!(group = %config.group, code = joined.error_code, generation = joined.generation_id, leader = %joined.leader.as_str(), member = %joined.member_id.as_str(), members = joined.members.len(), "joined");
        match joined.error_code {
            NONE => {}
            MEMBER_ID_REQUIRED => {
                self.member_id = joined.member_id.as_str().to_owned();
                return Ok(false);
            }
            UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                return Ok(false);
            }
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => return Ok(false),
            code => return Err(GroupError::Broker("join group", code)),
        }
        self.member_id = joined.member_id.as_str().to_owned();
        self.generation = joined.generation_id;
        self.last_heard = Instant::now();
        let assignments = if joined.leader.as_str() == self.member_id {
            let members: Vec<String> = joined
                .members
                .iter()
                .map(|member| member.member_id.as_str().to_owned())
                .collect();
            assign(config.partitions, &members)
                .iter()
                .map(|(member_id, partitions)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(str_bytes(member_id))
                        .with_assignment(encode_assignment(&config.topic, partitions))
                })
                .collect()
        } else {
            Vec::new()
        };
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(str_bytes(&config.group)))
            .with_generation_id(self.generation)
            .with_member_id(str_bytes(&self.member_id))
            .with_assignments(assignments);
        let synced = connection
            .call("sync group", SYNC_VERSION, &request, self.call_timeout())
            .await?;
        tracing::debug!(group = %self.config.group, code = synced.error_code, generation = self.generation, "synced");
        match synced.error_code {
            NONE => {
                self.last_heard = Instant::now();
                Ok(true)
            }
            UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                Ok(false)
            }
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => Ok(false),
            code => Err(GroupError::Broker("sync group", code)),
        }
    }

    /// The coordinator's member list of the group.
    async fn members(&mut self, connection: &mut Connection) -> Result<Vec<String>, GroupError> {
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(str_bytes(&self.config.group))]);
        let described = connection
            .call(
                "describe group",
                DESCRIBE_VERSION,
                &request,
                self.call_timeout(),
            )
            .await?;
        let group = described
            .groups
            .into_iter()
            .find(|group| group.group_id.0.as_str() == self.config.group)
            .ok_or_else(|| {
                GroupError::Protocol(
                    "describe group",
                    "the group is not in the answer".to_owned(),
                )
            })?;
        if group.error_code != NONE {
            return Err(GroupError::Broker("describe group", group.error_code));
        }
        Ok(group
            .members
            .into_iter()
            .map(|member| member.member_id.as_str().to_owned())
            .collect())
    }

    /// One heartbeat: whether this member is still one, must join again, or was dropped.
    async fn heartbeat(&mut self, connection: &mut Connection) -> Result<Beat, GroupError> {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(&self.config.group)))
            .with_generation_id(self.generation)
            .with_member_id(str_bytes(&self.member_id));
        let beat = connection
            .call(
                "heartbeat",
                HEARTBEAT_VERSION,
                &request,
                self.beat_timeout(),
            )
            .await?;
        if beat.error_code != NONE {
            tracing::debug!(group = %self.config.group, code = beat.error_code, generation = self.generation, "heartbeat refused");
        }
        match beat.error_code {
            NONE => {
                self.last_heard = Instant::now();
                Ok(Beat::Member)
            }
            REBALANCE_IN_PROGRESS => Ok(Beat::Rejoin),
            ILLEGAL_GENERATION => Ok(Beat::Expelled),
            UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                Ok(Beat::Expelled)
            }
            code => Err(GroupError::Broker("heartbeat", code)),
        }
    }

    async fn leave(&mut self, connection: &mut Connection) {
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(str_bytes(&self.config.group)))
            .with_members(vec![
                MemberIdentity::default().with_member_id(str_bytes(&self.member_id))
            ]);
        match connection
            .call(
                "leave group",
                LEAVE_VERSION,
                &request,
                Duration::from_secs(2),
            )
            .await
        {
            Ok(left) if left.error_code == NONE => {
                tracing::info!(group = %self.config.group, "left the consumer group")
            }
            Ok(left) => {
                tracing::warn!(group = %self.config.group, code = left.error_code, "leaving the consumer group failed; the coordinator drops this member after the session timeout")
            }
            Err(error) => {
                tracing::warn!(group = %self.config.group, %error, "leaving the consumer group failed; the coordinator drops this member after the session timeout")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use proptest::prelude::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| format!("andante-{name}")).collect()
    }

    #[test]
    fn a_member_leaving_moves_mostly_its_own_partitions() {
        let all = assign(64, &ids(&["a", "b", "c", "d"]));
        let without_c = assign(64, &ids(&["a", "b", "d"]));
        let kept: usize = ids(&["a", "b", "d"])
            .iter()
            .map(|id| all[id].iter().filter(|p| without_c[id].contains(p)).count())
            .sum();
        // 48 partitions were on survivors; a plan from scratch (range or round robin) would
        // keep about a third of them.
        assert!(kept >= 40, "{kept} of 48 kept");
        // It comes back to what it had, whatever the order of the list.
        assert_eq!(assign(64, &ids(&["c", "a", "d", "b"])), all);
    }

    #[test]
    fn the_assignment_is_the_standard_consumer_protocol() {
        let bytes = encode_assignment("spans", &[2, 5]);
        let mut body = bytes.clone();
        let version = body.get_i16();
        let decoded = ConsumerProtocolAssignment::decode(&mut body, version).unwrap();
        assert_eq!(decoded.assigned_partitions[0].topic.0.as_str(), "spans");
        assert_eq!(decoded.assigned_partitions[0].partitions, vec![2, 5]);
        let mut body = encode_subscription("spans", "live-store-0:3200");
        let version = body.get_i16();
        let decoded = ConsumerProtocolSubscription::decode(&mut body, version).unwrap();
        assert_eq!(decoded.topics[0].as_str(), "spans");
        assert_eq!(
            decoded.user_data.as_deref(),
            Some(&b"live-store-0:3200"[..])
        );
    }

    proptest! {
        #[test]
        fn every_partition_has_one_owner_shares_are_even_and_order_does_not_matter(
            partitions in 0u32..64,
            names in proptest::collection::btree_set("[a-z0-9-]{1,12}", 1..9),
        ) {
            let members: Vec<String> = names.into_iter().collect();
            let plan = assign(partitions, &members);
            prop_assert_eq!(plan.len(), members.len());
            let mut all: Vec<u32> = plan.values().flatten().copied().collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..partitions).collect::<Vec<_>>());
            let sizes: Vec<usize> = plan.values().map(Vec::len).collect();
            let (low, high) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            prop_assert!(high - low <= 1, "{:?}", sizes);
            let mut reversed = members.clone();
            reversed.reverse();
            prop_assert_eq!(assign(partitions, &reversed), plan);
        }
    }
}
