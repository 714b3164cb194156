package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// LANs are Linux network namespaces, made with iproute2, so only root can have
// them (without root, or with -loopback, one LAN runs on the host's loopback).
// LAN i is a bridge efbr<i> on the host with address 10.77.<i>.1/24; agent j
// lives in network namespace ef-agent-<j> with a veth into its LAN's bridge and
// address 10.77.<i>.<10+j>, routed via the host. Multicast (mDNS discovery)
// stays within a bridge, so each LAN discovers only its own agents; every LAN
// reaches the host's addresses, where the hub and the registry listen on
// 10.77.1.1.
const (
	lanSubnet    = "10.77.0.0/16"
	lanBridge    = "efbr"
	lanVeth      = "efv"
	lanNetnsBase = "ef-agent-"
)

// lanHost is the host's address on LAN lan (1-based).
func lanHost(lan int) string { return "10.77." + strconv.Itoa(lan) + ".1" }

// agentNet is where one agent runs: its network namespace ("" for the host's) and
// the address it advertises.
type agentNet struct {
	netns string
	addr  string
	lan   int
}

// lanPlan returns where agent i (1-based) runs with lans LANs: round-robin
// over the LANs, or on the host's loopback.
func lanPlan(i, lans int, loopback bool) agentNet {
	if loopback {
		return agentNet{addr: "127.0.0.1", lan: 1}
	}
	lan := (i-1)%lans + 1
	return agentNet{netns: lanNetnsBase + strconv.Itoa(i), addr: "10.77." + strconv.Itoa(lan) + "." + strconv.Itoa(10+i), lan: lan}
}

// checkLANs says why LANs in network namespaces cannot be had here, if they
// cannot.
func checkLANs(lans, agents int) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("LANs in network namespaces need root (-lans %d)", lans)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("LANs in network namespaces need iproute2's ip: %w", err)
	}
	if lans > 250 || agents > 240 {
		return errors.New("at most 250 LANs and 240 agents")
	}
	_, subnet, _ := net.ParseCIDR(lanSubnet)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && subnet.Contains(ipn.IP) && !strings.HasPrefix(interfaceOf(ipn.IP), lanBridge) {
			return fmt.Errorf("-lans: this host already has an address in %s (%s); the local LANs would clash with it", lanSubnet, ipn.IP)
		}
	}
	return nil
}

func interfaceOf(ip net.IP) string {
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(ip) {
				return ifc.Name
			}
		}
	}
	return ""
}

// setupLANs creates the bridges and the agents' network namespaces.
func setupLANs(ctx context.Context, lans, agents int) error {
	for lan := 1; lan <= lans; lan++ {
		br := lanBridge + strconv.Itoa(lan)
		if err := ipCmd(ctx,
			[]string{"link", "add", br, "type", "bridge"},
			[]string{"addr", "add", lanHost(lan) + "/24", "dev", br},
			[]string{"link", "set", br, "up"},
		); err != nil {
			return err
		}
	}
	for i := 1; i <= agents; i++ {
		an := lanPlan(i, lans, false)
		veth := lanVeth + strconv.Itoa(i)
		if err := ipCmd(ctx,
			[]string{"netns", "add", an.netns},
			[]string{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", an.netns},
			[]string{"link", "set", veth, "master", lanBridge + strconv.Itoa(an.lan), "up"},
			[]string{"-n", an.netns, "addr", "add", an.addr + "/24", "dev", "eth0"},
			[]string{"-n", an.netns, "link", "set", "eth0", "up"},
			[]string{"-n", an.netns, "link", "set", "lo", "up"},
			[]string{"-n", an.netns, "route", "add", "default", "via", lanHost(an.lan)},
		); err != nil {
			return err
		}
	}
	return nil
}

// teardownLANs deletes every namespace and bridge setupLANs may have made, also
// those of an earlier fabric that was killed. Deleting a namespace deletes its
// veth pair. It does nothing where network namespaces are not available.
func teardownLANs() {
	if os.Geteuid() != 0 {
		return
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		return
	}
	out, _ := exec.Command(ipPath, "netns", "list").Output()
	for line := range strings.Lines(string(out)) {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, lanNetnsBase) {
			_ = exec.Command(ipPath, "netns", "del", name).Run()
		}
	}
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if strings.HasPrefix(ifc.Name, lanBridge) || strings.HasPrefix(ifc.Name, lanVeth) {
			_ = exec.Command(ipPath, "link", "del", ifc.Name).Run()
		}
	}
}

// ipCmd runs `ip args...` for each argument list, stopping at the first failure.
func ipCmd(ctx context.Context, cmds ...[]string) error {
	for _, args := range cmds {
		out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %s: %w", strings.Join(args, " "), strings.TrimSpace(string(out)), err)
		}
	}
	return nil
}
