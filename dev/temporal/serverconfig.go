package devtemporal

import (
	"time"

	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/membership/static"
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/temporal"
)

const (
	// clusterName is both the current and the master cluster. Stored
	// cluster metadata wins over config on restart, so it must never change.
	clusterName = "active"
	storeName   = "sqlite-default"
	// nsCacheRefresh is how often every service re-reads namespaces; a
	// changed retention or a new search attribute is in force everywhere
	// after about one interval. The server default is 2 s.
	nsCacheRefresh = time.Second
)

// ports are the listen ports of the four services; the frontend also
// serves its HTTP API on frontendHTTP.
type ports struct {
	frontend, frontendHTTP, history, matching, worker int
}

// serverConfig builds the static configuration: all services in one
// process on r.frontendIP, one history shard, SQLite for both the main and
// the visibility store, no archival, no replication.
func serverConfig(r resolved, p ports, sqlCfg *config.SQL) *config.Config {
	var c config.Config
	c.Global.Membership.MaxJoinDuration = 30 * time.Second
	c.Global.Membership.BroadcastAddress = r.frontendIP

	c.Persistence.DefaultStore = storeName
	c.Persistence.VisibilityStore = storeName
	c.Persistence.NumHistoryShards = 1
	c.Persistence.DataStores = map[string]config.DataStore{storeName: {SQL: sqlCfg}}

	c.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             hostPort(r.frontendIP, p.frontend),
				HTTPAddress:            hostPort(r.frontendIP, p.frontendHTTP),
				// ClusterID left empty: the server generates one for a new
				// database and keeps the stored one afterwards.
			},
		},
	}
	c.DCRedirectionPolicy.Policy = "noop"

	svc := func(grpc, http int) config.Service {
		var s config.Service
		s.RPC.GRPCPort = grpc
		s.RPC.HTTPPort = http
		s.RPC.BindOnIP = r.frontendIP
		return s
	}
	c.Services = map[string]config.Service{
		string(primitives.FrontendService): svc(p.frontend, p.frontendHTTP),
		string(primitives.HistoryService):  svc(p.history, 0),
		string(primitives.MatchingService): svc(p.matching, 0),
		string(primitives.WorkerService):   svc(p.worker, 0),
	}

	c.Archival.History.State = "disabled"
	c.Archival.Visibility.State = "disabled"
	c.NamespaceDefaults.Archival.History.State = "disabled"
	c.NamespaceDefaults.Archival.Visibility.State = "disabled"
	c.PublicClient.HostPort = hostPort(r.frontendIP, p.frontend)
	return &c
}

// staticHosts pins every service to its one local address (no ringpop).
func staticHosts(ip string, p ports) map[primitives.ServiceName]static.Hosts {
	return map[primitives.ServiceName]static.Hosts{
		primitives.FrontendService: static.SingleLocalHost(hostPort(ip, p.frontend)),
		primitives.HistoryService:  static.SingleLocalHost(hostPort(ip, p.history)),
		primitives.MatchingService: static.SingleLocalHost(hostPort(ip, p.matching)),
		primitives.WorkerService:   static.SingleLocalHost(hostPort(ip, p.worker)),
	}
}

// dynamicConfig is the dev server's dynamic configuration. Compared with
// `temporal server start-dev` (which sets the host-level history cache,
// visibility RPS, search-attribute cache read-through and persistence QPS):
//
//   - request limits are raised so a rollout can start on the order of a
//     thousand workflows at once;
//   - task queues have one partition: on one host partitions buy nothing,
//     and with four, a burst leaves backlog in a partition no poller is on
//     until a long poll expires (measured: 50–60 s stalls in TestBurst);
//   - the search-attribute cache read-through is left off: with SQL
//     visibility the cluster-level attributes are the fixed preallocated
//     columns (new attributes are namespace aliases, which the namespace
//     cache handles), while the read-through makes every visibility write
//     read cluster metadata under one mutex (seen serialising a burst).
//
// Task-queue partitions are fixed for a state dir's lifetime: lowering the
// count strands backlog in the dropped partitions, so never raise it here
// without a new state dir.
func dynamicConfig() dynamicconfig.StaticClient {
	return dynamicconfig.StaticClient{
		// Request limits (defaults 2400 frontend, 2400 per namespace,
		// 3000 history, 1200 matching).
		dynamicconfig.FrontendRPS.Key():                        10000,
		dynamicconfig.FrontendMaxNamespaceRPSPerInstance.Key(): 10000,
		dynamicconfig.HistoryRPS.Key():                         10000,
		dynamicconfig.MatchingRPS.Key():                        10000,
		// Persistence QPS (defaults 2000 frontend, 9000 history, 3000
		// matching); SQLite is the real limit.
		dynamicconfig.FrontendPersistenceMaxQPS.Key(): 10000,
		dynamicconfig.HistoryPersistenceMaxQPS.Key():  45000,
		dynamicconfig.MatchingPersistenceMaxQPS.Key(): 10000,
		// Visibility RPS (default 10, start-dev 100): the Web UI, list
		// and count calls from tests and the CLI.
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key():        500,
		dynamicconfig.FrontendMaxNamespaceVisibilityBurstRatioPerInstance.Key(): 2.0,
		// start-dev: host-level mutable-state cache of 8k entries
		// (default 128k) keeps memory down.
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key(): 8192,
		// One partition per task queue (default 4).
		dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():  1,
		dynamicconfig.MatchingNumTaskqueueWritePartitions.Key(): 1,
		// One shard serialises its persistence calls; with a burst on
		// SQLite the queue gets long. Default 5 s.
		dynamicconfig.ShardIOTimeout.Key(): 30 * time.Second,
		// Namespace changes (retention, search attributes) reach all
		// services sooner (default 2 s).
		dynamicconfig.NamespaceCacheRefreshInterval.Key(): nsCacheRefresh,
	}
}

// serverOptions assembles the temporal.NewServer options.
func serverOptions(r resolved, p ports, sqlCfg *config.SQL, logger serverLogger) []temporal.ServerOption {
	return []temporal.ServerOption{
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithConfig(serverConfig(r, p, sqlCfg)),
		temporal.WithStaticHosts(staticHosts(r.frontendIP, p)),
		temporal.WithLogger(logger),
		temporal.WithDynamicConfigClient(dynamicConfig()),
	}
}
