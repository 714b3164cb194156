package fabrictest

import (
	"io"
	"net"
	"sync"
)

// Proxy forwards TCP connections from addr to target until it is cut. Cutting
// it closes every connection and refuses new ones, as a network that lost its
// route to the provider would; Restore listens again on the same address.
type Proxy struct {
	addr, target string
	// listen opens the listener; nil means net.Listen (a LAN's proxy
	// listens inside the LAN's network namespace).
	listen func(network, addr string) (net.Listener, error)

	mu    sync.Mutex
	lis   net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Restore starts forwarding again.
func (p *Proxy) Restore() error {
	listen := p.listen
	if listen == nil {
		listen = net.Listen
	}
	lis, err := listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.lis = lis
	if p.conns == nil {
		p.conns = map[net.Conn]struct{}{}
	}
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(c)
			}()
		}
	}()
	return nil
}

func (p *Proxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, up) {
		c.Close()
		up.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
	}
	go pipe(up, c)
	go pipe(c, up)
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// track registers both ends of a forwarded connection, unless the proxy has
// been cut meanwhile.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lis == nil {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

// Cut closes the listener and every forwarded connection, and waits until the
// forwarding goroutines have ended.
func (p *Proxy) Cut() {
	p.mu.Lock()
	if p.lis != nil {
		p.lis.Close()
		p.lis = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
