// The gRPC C++ side of the A43 conformance test (see README.md beside this file).
//
// A line protocol on stdin/stdout, driven by `zt-a43-conformance`:
//
//   CHECK <hex policy JSON>  -> "ACCEPTED" or "REFUSED <code> <hex message>"
//                               (StaticDataAuthorizationPolicyProvider::Create only)
//   SERVE <hex policy JSON>  -> "LISTENING <port>" or "REFUSED <code> <hex message>"
//                               (stops the previous server, starts a new one with the policy)
//   STOP                     -> "STOPPED"
//   QUIT                     -> exits
//
// The server speaks TLS with gRPC's own credentials and requires and verifies a client
// certificate, so the peer's subject and SANs reach the authorization engine exactly as
// gRPC's TLS stack (OpenSSL via TSI) renders them. Every method path is answered by one
// generic callback handler with OK; a denied call never reaches it (the authorization
// filter answers PERMISSION_DENIED). The OK response (a google.protobuf.BytesValue) carries
// what gRPC saw of the peer (auth context properties) and the call's metadata, as lines of
// "kind\thex(value)", so the harness can report gRPC's own rendering of the subject.
//
// Usage: a43_server --cert server.pem --key server.key --ca ca.pem

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/authorization_policy_provider.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "a43_server: cannot read " << path << "\n";
    std::exit(2);
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string ToHex(const std::string& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

bool FromHex(const std::string& hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  out->clear();
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]);
    int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

// Answers every method: reads the request message, then writes one message describing the
// peer and the metadata as gRPC saw them, and finishes with OK.
class EchoPeerReactor : public grpc::ServerGenericBidiReactor {
 public:
  explicit EchoPeerReactor(grpc::GenericCallbackServerContext* ctx) {
    std::string text;
    auto auth = ctx->auth_context();
    if (auth != nullptr) {
      for (const char* name : {"x509_subject", "peer_uri", "peer_dns",
                               "x509_common_name"}) {
        for (const auto& value : auth->FindPropertyValues(name)) {
          text += std::string(name) + "\t" +
                  ToHex(std::string(value.data(), value.size())) + "\n";
        }
      }
    }
    for (const auto& entry : ctx->client_metadata()) {
      text += "md\t" +
              ToHex(std::string(entry.first.data(), entry.first.size())) +
              "\t" +
              ToHex(std::string(entry.second.data(), entry.second.size())) +
              "\n";
    }
    // Framed as a protobuf message with the text in field 1 (google.protobuf.BytesValue),
    // so any gRPC client can decode it.
    std::string message(1, '\x0a');
    for (size_t n = text.size(); ; n >>= 7) {
      if (n < 0x80) {
        message.push_back(static_cast<char>(n));
        break;
      }
      message.push_back(static_cast<char>((n & 0x7f) | 0x80));
    }
    message += text;
    grpc::Slice slice(message);
    response_ = grpc::ByteBuffer(&slice, 1);
    StartRead(&request_);
  }

  void OnReadDone(bool /*ok*/) override {
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
  }

  void OnDone() override { delete this; }

 private:
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
};

class AnyMethodService : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* ctx) override {
    return new EchoPeerReactor(ctx);
  }
};

void Refused(const grpc::Status& status) {
  std::cout << "REFUSED " << static_cast<int>(status.error_code()) << " "
            << ToHex(status.error_message()) << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cert_path, key_path, ca_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--cert") cert_path = argv[i + 1];
    else if (flag == "--key") key_path = argv[i + 1];
    else if (flag == "--ca") ca_path = argv[i + 1];
  }
  if (cert_path.empty() || key_path.empty() || ca_path.empty()) {
    std::cerr << "usage: a43_server --cert PEM --key PEM --ca PEM\n";
    return 2;
  }
  grpc::SslServerCredentialsOptions tls(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.pem_root_certs = ReadFile(ca_path);
  tls.pem_key_cert_pairs.push_back({ReadFile(key_path), ReadFile(cert_path)});
  auto credentials = grpc::SslServerCredentials(tls);

  // A generic callback service belongs to one server: each server gets its own.
  std::unique_ptr<AnyMethodService> service;
  std::unique_ptr<grpc::Server> server;
  auto stop = [&server, &service]() {
    if (server != nullptr) {
      server->Shutdown(std::chrono::system_clock::now() +
                       std::chrono::seconds(1));
      server->Wait();
      server.reset();
    }
    service.reset();
  };

  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream words(line);
    std::string command, argument;
    words >> command >> argument;
    if (command == "QUIT") break;
    if (command == "STOP") {
      stop();
      std::cout << "STOPPED" << std::endl;
      continue;
    }
    if (command != "CHECK" && command != "SERVE") {
      std::cout << "ERROR unknown command" << std::endl;
      continue;
    }
    std::string policy;
    if (!FromHex(argument, &policy)) {
      std::cout << "ERROR bad hex" << std::endl;
      continue;
    }
    grpc::Status status;
    auto provider =
        grpc::experimental::StaticDataAuthorizationPolicyProvider::Create(
            policy, &status);
    if (provider == nullptr) {
      Refused(status);
      continue;
    }
    if (command == "CHECK") {
      std::cout << "ACCEPTED" << std::endl;
      continue;
    }
    stop();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", credentials, &port);
    builder.experimental().SetAuthorizationPolicyProvider(provider);
    service = std::make_unique<AnyMethodService>();
    builder.RegisterCallbackGenericService(service.get());
    server = builder.BuildAndStart();
    if (server == nullptr || port == 0) {
      std::cout << "ERROR server did not start" << std::endl;
      continue;
    }
    std::cout << "LISTENING " << port << std::endl;
  }
  stop();
  return 0;
}
