# The server and `kvforge serve` use only the public API: every quoted
# include is under kvforge/ (include/kvforge) or the server's own headers
# (or the command-line tool's own helpers), and nothing reaches into an
# object's concrete type with dynamic_cast.
#   cmake -DSOURCE_DIR=... -P public_api_check.cmake
file(GLOB files ${SOURCE_DIR}/src/server/*.h ${SOURCE_DIR}/src/server/*.cpp)
list(APPEND files ${SOURCE_DIR}/tools/cmd_serve.cpp ${SOURCE_DIR}/tools/engine_options.h
     ${SOURCE_DIR}/tools/engine_options.cpp)
set(bad "")
foreach(f IN LISTS files)
  file(STRINGS ${f} lines REGEX "#include \"|dynamic_cast")
  foreach(line IN LISTS lines)
    if(line MATCHES "dynamic_cast")
      string(APPEND bad "${f}: ${line}\n")
    elseif(line MATCHES "#include \"([^\"]+)\"")
      set(header ${CMAKE_MATCH_1})
      if(NOT header MATCHES "^(kvforge|server)/" AND NOT header MATCHES "^(command|engine_options)\\.h$")
        string(APPEND bad "${f}: ${line}\n")
      endif()
    endif()
  endforeach()
endforeach()
list(LENGTH files n)
if(n LESS 10)
  message(FATAL_ERROR "found only ${n} server sources under ${SOURCE_DIR}")
endif()
if(bad)
  message(FATAL_ERROR "the server must use only the public API (include/kvforge):\n${bad}")
endif()
message(STATUS "${n} server sources use only the public API")
