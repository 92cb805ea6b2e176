//! A connection to the deployment: one server's multiplexed connection, or a cluster's
//! (which routes each command to the master of its keys' slot, following `MOVED` and
//! `ASK`), behind one type; and the few commands that must go to each node in turn.

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use ::redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Value};

/// One server's connection, or a cluster's. Cheap to clone; clones share the socket(s).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// A master of the deployment, for commands that are about one node rather than one key
/// (`SCAN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// The one server of a non-cluster deployment.
    Only,
    /// A cluster master.
    At { host: String, port: u16 },
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Only => f.write_str("the server"),
            Self::At { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl Conn {
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Every master: the one server, or each master `CLUSTER SLOTS` names.
    pub(crate) async fn masters(&mut self) -> RedisResult<Vec<Node>> {
        let Self::Cluster(connection) = self else {
            return Ok(vec![Node::Only]);
        };
        let slots = connection
            .route_command(
                ::redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
            )
            .await?;
        let mut masters = Vec::new();
        if let Value::Array(ranges) = slots {
            for range in ranges {
                let Value::Array(fields) = range else { continue };
                // [start, end, [host, port, id, ...], replicas...]
                let Some(Value::Array(master)) = fields.get(2) else {
                    continue;
                };
                let host = master
                    .first()
                    .and_then(|host| String::from_redis_value(host.clone()).ok());
                let port = master
                    .get(1)
                    .and_then(|port| u16::from_redis_value(port.clone()).ok());
                if let (Some(host), Some(port)) = (host, port) {
                    let node = Node::At { host, port };
                    if !masters.contains(&node) {
                        masters.push(node);
                    }
                }
            }
        }
        Ok(masters)
    }

    /// The cluster's slot layout, as far as a load must know it: which master serves
    /// which slots, and whether any master is moving slots right now (`None` when it is,
    /// or on a single server: `Some(String::new())`). A load that finds the same layout,
    /// and no move, before and after it has seen every key where it was: a key moves
    /// only while its slot is being migrated.
    pub(crate) async fn slot_layout(&mut self) -> RedisResult<Option<String>> {
        if !self.is_cluster() {
            return Ok(Some(String::new()));
        }
        let mut layout = Vec::new();
        for node in self.masters().await? {
            let nodes: String = self.on_node(&node, ::redis::cmd("CLUSTER").arg("NODES")).await?;
            // Its own line: `<id> <addr> myself,master - ... <slots> [<slot>->-<id>]`.
            let Some(own) = nodes.lines().find(|line| line.contains("myself")) else {
                continue;
            };
            if own.contains('[') {
                return Ok(None);
            }
            let fields: Vec<&str> = own.split_whitespace().collect();
            layout.push(format!(
                "{node}={}",
                fields.get(8..).unwrap_or_default().join(",")
            ));
        }
        layout.sort();
        Ok(Some(layout.join(" ")))
    }

    /// Runs `cmd` on `node` (not routed by key).
    pub(crate) async fn on_node<T: FromRedisValue>(&mut self, node: &Node, cmd: &Cmd) -> RedisResult<T> {
        match (self, node) {
            (Self::Cluster(connection), Node::At { host, port }) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                T::from_redis_value(connection.route_command(cmd.clone(), routing).await?).map_err(Into::into)
            }
            (connection, _) => cmd.query_async(connection).await,
        }
    }

    /// Runs `pipeline` on `node` as it is, answering each command's reply (an error
    /// reply, such as `MOVED` for a key that left the node, as a value of its own).
    pub(crate) async fn pipeline_on_node(
        &mut self,
        node: &Node,
        pipeline: &Pipeline,
    ) -> RedisResult<Vec<Value>> {
        match (self, node) {
            (Self::Cluster(connection), Node::At { host, port }) => {
                let route = SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                };
                connection
                    .route_pipeline(pipeline.clone(), 0, pipeline.len(), route)
                    .await
            }
            (connection, _) => {
                let mut pipeline = pipeline.clone();
                pipeline.ignore_errors().query_async(connection).await
            }
        }
    }
}
