package main

import "time"

// networkSetup configures one interface with DHCPv4; its bringUp method
// is in network_linux.go (and fails on other systems).
type networkSetup struct {
	carrierWait time.Duration // how long to wait for carrier after link up
	dhcpTimeout time.Duration // how long to try for a lease
	replyWait   time.Duration // how long to wait for each OFFER or ACK
	dhcpRetry   retryPolicy   // between DHCP exchanges
	resolvConf  string        // written from the lease's DNS servers when absent; "" = never
	con         *console
}
