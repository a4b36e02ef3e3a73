// Command grpchealth is a gRPC health server for podsup's tests: it serves
// the standard health protocol on -port and reports SERVING while -file
// exists and NOT_SERVING otherwise, for the overall health and for the
// service named by -service.
package main

import (
	"flag"
	"log"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	port := flag.String("port", "9090", "port to listen on")
	file := flag.String("file", "/tmp/serving", "SERVING while this file exists")
	service := flag.String("service", "app", "service name to report")
	flag.Parse()
	ln, err := net.Listen("tcp", ":"+*port)
	if err != nil {
		log.Fatal(err)
	}
	hs := health.NewServer()
	go func() {
		for ; ; time.Sleep(200 * time.Millisecond) {
			status := healthpb.HealthCheckResponse_NOT_SERVING
			if _, err := os.Stat(*file); err == nil {
				status = healthpb.HealthCheckResponse_SERVING
			}
			hs.SetServingStatus("", status)
			hs.SetServingStatus(*service, status)
		}
	}()
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	log.Printf("grpc health on :%s", *port)
	log.Fatal(srv.Serve(ln))
}
