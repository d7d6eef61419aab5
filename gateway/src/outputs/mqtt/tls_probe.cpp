#include "outputs/mqtt/tls_probe.hpp"

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <memory>

namespace citygate::mqtt {
namespace {

int connectTcp(const std::string& host, const std::string& port, std::chrono::milliseconds timeout, std::string& why) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    why = std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      why = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  return fd;
}

}  // namespace

std::string probeTls(const std::string& host, const std::string& port, const std::string& caFile,
                     const std::string& certFile, const std::string& keyFile, std::chrono::milliseconds timeout) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return "cannot create a TLS context";
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (!caFile.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), caFile.c_str(), nullptr) != 1) return "cannot load ca_file " + caFile;
  } else {
    SSL_CTX_set_default_verify_paths(ctx.get());
  }
  if (!certFile.empty() && SSL_CTX_use_certificate_chain_file(ctx.get(), certFile.c_str()) != 1) {
    return "cannot load cert_file " + certFile;
  }
  if (!keyFile.empty() && SSL_CTX_use_PrivateKey_file(ctx.get(), keyFile.c_str(), SSL_FILETYPE_PEM) != 1) {
    return "cannot load key_file (does it match cert_file?)";
  }
  std::string why;
  const int fd = connectTcp(host, port, timeout, why);
  if (fd < 0) return "cannot reach " + host + ":" + port + ": " + why;
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  SSL_set_fd(ssl.get(), fd);
  SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(host.c_str()));
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
  if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
  std::string result;
  if (SSL_connect(ssl.get()) != 1) {
    const long verify = SSL_get_verify_result(ssl.get());
    if (verify != X509_V_OK) {
      result = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
    } else {
      char buf[256];
      const unsigned long e = ERR_get_error();
      ERR_error_string_n(e, buf, sizeof buf);
      result = e != 0 ? std::string("handshake failed: ") + buf : "handshake failed";
    }
  } else {
    // The handshake works; with mutual TLS the broker rejects a missing client certificate only
    // when it first reads from us.
    char b;
    const int n = SSL_read(ssl.get(), &b, 1);
    if (n <= 0) {
      const unsigned long e = ERR_get_error();
      if (e != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        result = std::string("the broker ended the TLS session: ") + buf;
      }
    }
    SSL_shutdown(ssl.get());
  }
  ERR_clear_error();
  ::close(fd);
  return result;
}

}  // namespace citygate::mqtt
