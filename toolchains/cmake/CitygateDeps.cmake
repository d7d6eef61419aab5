# The gateway's dependencies, all from Debian 12's packages (toolchains/install-deps.sh installs them).
# Only a build with CITYGATE_GATEWAY=ON (the default) includes this file; the schema alone needs
# protoc (proto/CMakeLists.txt).
find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(Protobuf 3.21 REQUIRED)
find_package(PahoMqttCpp 1.2 REQUIRED)
find_package(spdlog 1.10 REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(MODBUS REQUIRED IMPORTED_TARGET libmodbus)
pkg_check_modules(SYSTEMD IMPORTED_TARGET libsystemd)
if(CITYGATE_TESTS)
  find_package(doctest 2.4 REQUIRED)
  include(doctest)
endif()

# Boost.Asio without the deprecated bits, and without Boost.System's library.
add_library(citygate_asio INTERFACE)
target_link_libraries(citygate_asio INTERFACE Boost::headers Threads::Threads)
target_compile_definitions(citygate_asio INTERFACE BOOST_ASIO_NO_DEPRECATED
  BOOST_ASIO_DISABLE_BOOST_REGEX BOOST_ASIO_NO_TS_EXECUTORS)
